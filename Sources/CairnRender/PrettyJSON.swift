import Foundation

/// The JSON every machine format uses: pretty, keys sorted (so equal values give equal
/// bytes), slashes unescaped. Empty if the value cannot be encoded.
public func prettyJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
}
