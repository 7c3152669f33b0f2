/// A span of time written as in manifests: `90s`, `30m`, `24h`, `7d`, `1h30m`.
public struct ManifestDuration: Sendable, Hashable, Codable, CustomStringConvertible {
    public var seconds: Int

    public init(seconds: Int) { self.seconds = seconds }

    /// Parses `<number><unit>` groups, units `s`, `m`, `h`, `d`; nil if the text is not of that form.
    public init?(parsing text: String) {
        var total = 0
        var digits = ""
        var sawGroup = false
        for ch in text {
            if ch.isASCII, ch.isNumber {
                digits.append(ch)
                continue
            }
            guard let n = Int(digits) else { return nil }
            let unit: Int
            switch ch {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86400
            default: return nil
            }
            let (product, o1) = n.multipliedReportingOverflow(by: unit)
            let (sum, o2) = total.addingReportingOverflow(product)
            if o1 || o2 { return nil }
            total = sum
            digits = ""
            sawGroup = true
        }
        guard sawGroup, digits.isEmpty else { return nil }
        seconds = total
    }

    /// The shortest form that parses back to the same value (`90m` becomes `1h30m`).
    public var description: String {
        if seconds == 0 { return "0s" }
        var rest = seconds
        var out = ""
        for (unit, name) in [(86400, "d"), (3600, "h"), (60, "m"), (1, "s")] where rest >= unit {
            out += "\(rest / unit)\(name)"
            rest %= unit
        }
        return out
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let d = ManifestDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a duration: \(text)")
        }
        self = d
    }
}
