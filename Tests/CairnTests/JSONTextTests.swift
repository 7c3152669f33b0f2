import CairnCore
import CairnReconcile
@testable import CairnStore
import Foundation
import Testing

/// The byte writers in `JSONText` against what they replace: the `String`-based canonical text
/// (kept here as the reference) and Foundation's `JSONEncoder` for stored text. Hashes of audit
/// rows and fingerprints, and stored rows, must not change by a byte.
@Suite struct JSONTextTests {
    /// The canonical text as it was first written, scalar by scalar into a `String`.
    static func referenceCanonical(_ value: JSONValue) -> String {
        var out = ""
        func string(_ s: String) {
            out += "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            out += "\""
        }
        func walk(_ v: JSONValue) {
            switch v {
            case .null: out += "null"
            case let .bool(b): out += b ? "true" : "false"
            case let .int(i): out += String(i)
            case let .double(d):
                if d.isFinite, d == d.rounded(), abs(d) < 1e15 { out += String(Int(d)) } else { out += "\(d)" }
            case let .string(s): string(s)
            case let .array(a):
                out += "["
                for (n, x) in a.enumerated() {
                    if n > 0 { out += "," }
                    walk(x)
                }
                out += "]"
            case let .object(o):
                out += "{"
                for (n, key) in o.keys.sorted().enumerated() {
                    if n > 0 { out += "," }
                    string(key)
                    out += ":"
                    walk(o[key]!)
                }
                out += "}"
            }
        }
        walk(value)
        return out
    }

    static let foundation: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func foundationText<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try foundation.encode(value), as: UTF8.self)
    }

    /// Seeded random values with the awkward parts: control characters, quotes, backslashes,
    /// slashes, non-ASCII and astral characters in keys and strings, every size of integer,
    /// doubles from tiny to huge, whole and negative zero.
    struct Values: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state ^ (state >> 29)
        }

        static let pieces: [String] = ["a", "Z", "_", "-", "/", "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{1}", "\u{1f}", "\u{7f}",
                                       "é", "ä", "e\u{301}", "ß", "日本", "😀", "\u{2028}", " ", "0", "9", "ndcg@10", "a10", "a2"]

        mutating func string() -> String {
            (0..<Int.random(in: 0...6, using: &self)).map { _ in Self.pieces.randomElement(using: &self)! }.joined()
        }

        mutating func double() -> Double {
            switch Int.random(in: 0...5, using: &self) {
            case 0: return Double(Int.random(in: -1_000_000...1_000_000, using: &self))
            case 1: return Double(Int.random(in: -1_000_000...1_000_000, using: &self)) / 1000
            case 2: return [0, 1e15, 1e16, 9_007_199_254_740_992, 1e21, 5e-324, 1e-7, 0.1, 2.5e300].randomElement(using: &self)!
            default:
                let d = Double(bitPattern: next())
                return d.isFinite ? d : 1.5
            }
        }

        mutating func value(depth: Int = 0) -> JSONValue {
            switch Int.random(in: 0...(depth > 3 ? 4 : 6), using: &self) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &self))
            case 2: return .int([Int.min, Int.max, 0, -1, 7, Int.random(in: Int.min...Int.max, using: &self)].randomElement(using: &self)!)
            case 3: return .double(double())
            case 4: return .string(string())
            case 5: return .array((0..<Int.random(in: 0...4, using: &self)).map { _ in value(depth: depth + 1) })
            default:
                var o: [String: JSONValue] = [:]
                for _ in 0..<Int.random(in: 0...5, using: &self) { o[string()] = value(depth: depth + 1) }
                return .object(o)
            }
        }
    }

    @Test func canonicalTextIsTheReferenceText() {
        var values = Values(state: 2026)
        for _ in 0..<5000 {
            let value = values.value()
            #expect(value.canonicalText == Self.referenceCanonical(value))
            #expect(value.canonicalBytes == Array(Self.referenceCanonical(value).utf8))
        }
    }

    @Test func storeTextIsWhatJSONEncoderWrites() throws {
        var values = Values(state: 1125)
        for _ in 0..<5000 {
            let value = values.value()
            #expect(try JSONText.storeText(value) == Self.foundationText(value))
        }
        // Doubles in typed fields (a whole one is an integer first, as JSON text reads it back).
        struct Typed: Codable { var ratio: Double; var count: Int; var name: String?; var weights: [String: Double] }
        for _ in 0..<2000 {
            let typed = Typed(ratio: values.double(), count: Int.random(in: -9...9_999_999, using: &values),
                              name: Bool.random(using: &values) ? values.string() : nil, weights: [values.string(): values.double()])
            #expect(try JSONText.storeText(typed) == Self.foundationText(typed))
        }
        #expect(throws: (any Error).self) { try JSONText.storeText([Double.infinity]) }
        #expect(throws: (any Error).self) { try Self.foundationText([Double.infinity]) }
    }

    /// Every payload the planner makes for the golden cases, stored as its type and as a value.
    @Test func storedPayloadsOfTheGoldenPlansAreWhatJSONEncoderWrites() throws {
        var checked = 0
        for planCase in PlannerCase.all {
            let plan = try planCase.run()
            for change in plan.changes {
                for value in [change.before, change.after].compactMap({ $0 }) {
                    #expect(try JSONText.storeText(value) == Self.foundationText(value))
                    func typed<T: Codable>(_ type: T.Type) throws {
                        guard let payload = try? value.decode(T.self) else { return }
                        #expect(try JSONText.storeText(payload) == Self.foundationText(payload), "\(planCase) \(change.address)")
                        // Apply stores a payload's own JSON: it must be what its type encodes to.
                        #expect(try JSONText.storeText(value) == JSONText.storeText(payload), "\(planCase) \(change.address)")
                        checked += 1
                    }
                    switch change.kind {
                    case .model: try typed(Model.self); try typed(TrainRequest.self); try typed(StageMove.self); try typed(Decision.self)
                    case .template: try typed(Template.self)
                    case .outcomeWeights: try typed(OutcomeWeights.self)
                    case .servingTarget: try typed(Assignment.self)
                    case .modelFamily: Issue.record("a plan never changes a ModelFamily")
                    }
                }
            }
        }
        #expect(checked > 40)
    }

    @Test func auditRowHashesAreTakenOverTheCanonicalObject() {
        var values = Values(state: 42)
        for _ in 0..<3000 {
            func maybe() -> String? { Bool.random(using: &values) ? values.string() : nil }
            let fields = AuditFields(id: Int64.random(in: -5...Int64.max, using: &values), at: Int64.random(in: 0...2_000_000_000, using: &values),
                                     action: values.string(), address: values.string(),
                                     version: Bool.random(using: &values) ? Int.random(in: -1...1000, using: &values) : nil,
                                     before: maybe().map { JSONValue.string($0).canonicalText }, after: values.value().canonicalText,
                                     reason: values.string(), revision: maybe(), author: maybe(), file: maybe(), actor: values.string(),
                                     signer: maybe())
            #expect(fields.canonicalBytes == Array(Self.referenceCanonical(fields.canonicalObject).utf8))
            #expect(fields.hash(previous: "p") == sha256Hex("p\n" + Self.referenceCanonical(fields.canonicalObject)))
        }
    }

    @Test func hexIsTwoLowerCaseDigitsAByte() {
        #expect(hexString([0, 1, 0x0f, 0x10, 0xab, 0xff]) == "00010f10abff")
        #expect(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(sha256Hex(Array("abc".utf8)) == sha256Hex("abc"))
    }
}

@Suite struct PostgresPlaceholderTests {
    @Test func questionMarksOutsideQuotesAreNumbered() {
        #expect(PostgresSession.numbered(#"SELECT a FROM t WHERE a = ? AND b = '?' AND "c?" = ? AND d = 'é?' || ?"#)
                == #"SELECT a FROM t WHERE a = $1 AND b = '?' AND "c?" = $2 AND d = 'é?' || $3"#)
        #expect(PostgresSession.numbered("SELECT 1") == "SELECT 1")
        let many = "INSERT INTO t(a) VALUES " + Array(repeating: "(?)", count: 12).joined(separator: ", ")
        #expect(PostgresSession.numbered(many).hasSuffix("($10), ($11), ($12)"))
    }
}

extension AuditFields {
    /// The row's content as a `JSONValue`, as the chain was first defined over: the object whose
    /// `canonicalText` an audit row's hash is taken over.
    var canonicalObject: JSONValue {
        func opt(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        var fields: [String: JSONValue] = [
            "id": .int(Int(id)), "at": .int(Int(at)), "action": .string(action), "address": .string(address),
            "version": version.map { .int($0) } ?? .null, "before": opt(before), "after": opt(after), "reason": .string(reason),
            "revision": opt(revision), "author": opt(author), "file": opt(file), "actor": .string(actor),
        ]
        // Present only when set (rows from before signatures keep their hashes).
        if let signer { fields["signer"] = .string(signer) }
        return .object(fields)
    }
}
