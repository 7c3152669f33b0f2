extension Plan {
    /// Where `other` (the plan the revision gives) first differs from this one (a saved plan),
    /// in words; nil when they are identical. `cairn apply` applies a saved plan only when its
    /// revision and the observed state give exactly the same plan (the planner is deterministic),
    /// so a plan file edited in transit is refused, and this names what was edited.
    public func firstDifference(from derived: Plan) -> String? {
        func quote(_ value: JSONValue?) -> String {
            guard let text = value?.canonicalText else { return "nothing" }
            return text.count > 160 ? String(text.prefix(160)) + "…" : text
        }
        func describe(_ c: Change) -> String { "\(c.action.rawValue) \(c.address)" + (c.version.map { " v\($0)" } ?? "") }
        let header: [(String, String, String)] = [
            ("formatVersion", formatVersion, derived.formatVersion), ("revision", revision, derived.revision),
            ("revisionName", revisionName, derived.revisionName), ("manifestRoot", manifestRoot, derived.manifestRoot),
            ("manifestCount", String(manifestCount), String(derived.manifestCount)),
            ("observedGeneration", String(observedGeneration), String(derived.observedGeneration)),
            ("lastAppliedRevision", lastAppliedRevision ?? "none", derived.lastAppliedRevision ?? "none"),
        ]
        for (field, saved, actual) in header where saved != actual {
            return "\(field) is \(Diagnostic.shortened(saved)) in the file, \(Diagnostic.shortened(actual)) from the revision"
        }
        for i in 0..<max(changes.count, derived.changes.count) {
            guard i < changes.count else { return "the revision gives change \(i + 1), \(describe(derived.changes[i])), which the file lacks" }
            guard i < derived.changes.count else { return "the file has change \(i + 1), \(describe(changes[i])), which the revision does not give" }
            let (s, d) = (changes[i], derived.changes[i])
            if s.isSame(as: d) { continue }
            if s.action != d.action || s.address != d.address || s.version != d.version {
                return "change \(i + 1) is \(describe(s)) in the file, \(describe(d)) from the revision"
            }
            let fields: [(String, String, String)] = [
                ("reason", Diagnostic.shortened(s.reason), Diagnostic.shortened(d.reason)), ("before", quote(s.before), quote(d.before)),
                ("after", quote(s.after), quote(d.after)), ("file", s.file ?? "none", d.file ?? "none"),
                ("appliedWith", s.appliedWith?.description ?? "none", d.appliedWith?.description ?? "none"),
            ]
            let (field, saved, actual) = fields.first { $0.1 != $0.2 }
                ?? (s.before.isSame(as: d.before) ? "after" : "before", "a different value", "another")
            return "change \(i + 1) (\(describe(s))): its \(field) is \(saved) in the file, \(actual) from the revision"
        }
        if blocked != derived.blocked { return "the blocked changes differ (\(blocked.count) in the file, \(derived.blocked.count) from the revision)" }
        if drift != derived.drift { return "the drift section differs (\(drift.count) in the file, \(derived.drift.count) from the revision)" }
        if candidates != derived.candidates { return "the candidate metrics differ" }
        if skipped != derived.skipped { return "the skipped section differs" }
        return nil
    }
}

extension Change {
    /// Equal as data: numbers compare by value (a plan file re-encoded by another JSON tool may
    /// write 2 as 2.0), everything else exactly.
    func isSame(as other: Change) -> Bool {
        action == other.action && address == other.address && version == other.version && reason == other.reason
            && file == other.file && appliedWith == other.appliedWith && before.isSame(as: other.before) && after.isSame(as: other.after)
    }
}

extension Optional where Wrapped == JSONValue {
    func isSame(as other: JSONValue?) -> Bool {
        switch (self, other) {
        case (nil, nil): true
        case let (a?, b?): a.isSame(as: b)
        default: false
        }
    }
}

extension JSONValue {
    /// Equality with numbers compared by value (2 and 2.0 are the same).
    public func isSame(as other: JSONValue) -> Bool {
        switch (self, other) {
        case let (.int(a), .double(b)), let (.double(b), .int(a)): Double(a) == b
        case let (.array(a), .array(b)): a.count == b.count && zip(a, b).allSatisfy { $0.isSame(as: $1) }
        case let (.object(a), .object(b)): a.count == b.count && a.allSatisfy { key, value in b[key].map { value.isSame(as: $0) } ?? false }
        default: self == other
        }
    }
}
