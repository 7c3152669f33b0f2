/// JSON written straight into UTF-8 bytes, in the two forms Cairn keeps: the canonical text
/// that hashes and fingerprints are taken over (`JSONValue.canonicalText`), and the text the
/// registry stores (`JSONText.storeText`, the same bytes as Foundation's `JSONEncoder` with
/// `.sortedKeys` and `.withoutEscapingSlashes`). Both were written through `String` and
/// `JSONEncoder` before; appending bytes is several times faster and gives the same text
/// (tests compare them on every kind of value).
public enum JSONText {
    /// Which rules a text follows where the two forms differ.
    public enum Form: Sendable {
        /// Keys in `String` order; `\b` and `\f` as `\u0008` and `\u000c`; whole doubles below
        /// 1e15 without a fraction, others as Swift prints them.
        case canonical
        /// Keys in UTF-8 byte order; `\b` and `\f`; doubles as Swift prints them without a
        /// trailing `.0` (Foundation's `JSONEncoder`).
        case store
    }

    /// The text a value is stored as in the registry. Throws on a number JSON cannot hold, as
    /// `JSONEncoder` does.
    public static func storeText<T: Encodable>(_ value: T) throws -> String {
        let json = try JSONValueEncoder().encode(value)
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try append(json, form: .store, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func append(_ value: JSONValue, form: Form, to out: inout [UInt8]) throws {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case let .bool(b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case let .int(i): appendInt(i, to: &out)
        case let .double(d): try appendDouble(d, form: form, to: &out)
        case let .string(s): appendString(s, form: form, to: &out)
        case let .array(a):
            out.append(UInt8(ascii: "["))
            for (n, v) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                try append(v, form: form, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let .object(o):
            out.append(UInt8(ascii: "{"))
            let keys: [String]
            switch form {
            case .canonical: keys = o.keys.sorted()
            case .store: keys = o.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            }
            for (n, key) in keys.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                appendString(key, form: form, to: &out)
                out.append(UInt8(ascii: ":"))
                try append(o[key]!, form: form, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    public static func appendInt(_ value: Int, to out: inout [UInt8]) {
        if value >= 0, value < 10 {
            out.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        guard value != .min else {
            out.append(contentsOf: String(value).utf8)
            return
        }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }

    static func appendDouble(_ d: Double, form: Form, to out: inout [UInt8]) throws {
        switch form {
        case .canonical:
            if d.isFinite, d == d.rounded(), abs(d) < 1e15 { appendInt(Int(d), to: &out) } else { out.append(contentsOf: "\(d)".utf8) }
        case .store:
            guard d.isFinite else { throw JSONTextError(message: "\(d) cannot be written as JSON") }
            var text = d.description
            if text.hasSuffix(".0") { text.removeLast(2) }
            out.append(contentsOf: text.utf8)
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    public static func appendString(_ s: String, form: Form, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                if start < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i])) }
                start = i + 1
                switch b {
                case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
                case 0x0a: out.append(contentsOf: #"\n"#.utf8)
                case 0x0d: out.append(contentsOf: #"\r"#.utf8)
                case 0x09: out.append(contentsOf: #"\t"#.utf8)
                case 0x08 where form == .store: out.append(contentsOf: #"\b"#.utf8)
                case 0x0c where form == .store: out.append(contentsOf: #"\f"#.utf8)
                default:
                    out.append(contentsOf: #"\u00"#.utf8)
                    out.append(hexDigits[Int(b >> 4)])
                    out.append(hexDigits[Int(b & 0xf)])
                }
            }
            if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...])) }
        }
        out.append(UInt8(ascii: "\""))
    }
}

public struct JSONTextError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
