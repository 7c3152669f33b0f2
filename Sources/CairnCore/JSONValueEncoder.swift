/// Encodes any `Encodable` straight into a `JSONValue`, without going through JSON text.
///
/// It gives the same values as encoding to text and reading it back (a whole `Double` becomes
/// `.int`, as `1.0` reads back as `1`), at a fraction of the cost: planning a large fleet
/// converts tens of thousands of payloads.
struct JSONValueEncoder {
    func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = Slot()
        try root.encode(value, path: [])
        return root.value
    }
}

/// One value under construction. A class, so containers can fill it in after they are handed out.
private final class Slot {
    enum State {
        case empty
        case value(JSONValue)
        case object([String: Slot])
        case array([Slot])
    }

    var state: State = .empty

    var value: JSONValue {
        switch state {
        case .empty: return .object([:])
        case let .value(v): return v
        case let .object(fields): return .object(fields.mapValues(\.value))
        case let .array(items): return .array(items.map(\.value))
        }
    }

    func encode<T: Encodable>(_ value: T, path: [any CodingKey]) throws {
        switch value {
        case let v as JSONValue: state = .value(v)
        case let v as String: state = .value(.string(v))
        case let v as Bool: state = .value(.bool(v))
        case let v as Int: state = .value(.int(v))
        case let v as Double: state = .value(Self.number(v))
        default: try value.encode(to: SlotEncoder(slot: self, codingPath: path))
        }
    }

    /// A whole number within the exact range of `Double` reads back from JSON text as an integer.
    static func number(_ d: Double) -> JSONValue {
        if d.isFinite, d == d.rounded(), abs(d) < 9_007_199_254_740_992 { return .int(Int(d)) }
        return .double(d)
    }

    func child(_ key: String) -> Slot {
        guard case .object(var fields) = state else {
            let slot = Slot()
            state = .object([key: slot])
            return slot
        }
        if let existing = fields[key] { return existing }
        let slot = Slot()
        fields[key] = slot
        state = .object(fields)
        return slot
    }

    func append() -> Slot {
        let slot = Slot()
        if case var .array(items) = state {
            items.append(slot)
            state = .array(items)
        } else {
            state = .array([slot])
        }
        return slot
    }
}

private struct SlotEncoder: Encoder {
    let slot: Slot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = slot.state {} else { slot.state = .object([:]) }
        return KeyedEncodingContainer(KeyedSlot<Key>(slot: slot, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = slot.state {} else { slot.state = .array([]) }
        return UnkeyedSlot(slot: slot, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleSlot(slot: slot, codingPath: codingPath)
    }
}

private struct KeyedSlot<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { slot.child(key.stringValue).state = .value(.null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { slot.child(key.stringValue).state = .value(.bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { slot.child(key.stringValue).state = .value(.string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { slot.child(key.stringValue).state = .value(Slot.number(value)) }
    mutating func encode(_ value: Float, forKey key: Key) throws { slot.child(key.stringValue).state = .value(Slot.number(Double(value))) }
    mutating func encode(_ value: Int, forKey key: Key) throws { slot.child(key.stringValue).state = .value(.int(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try encode(Int(value), forKey: key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try encode(Int(value), forKey: key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try slot.child(key.stringValue).encode(value, path: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        SlotEncoder(slot: slot.child(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        SlotEncoder(slot: slot.child(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { SlotEncoder(slot: slot.child("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { SlotEncoder(slot: slot.child(key.stringValue), codingPath: codingPath + [key]) }
}

private struct UnkeyedSlot: UnkeyedEncodingContainer, ForwardsNumbers {
    let slot: Slot
    let codingPath: [any CodingKey]

    var count: Int {
        if case let .array(items) = slot.state { return items.count }
        return 0
    }

    mutating func encodeNil() throws { slot.append().state = .value(.null) }
    mutating func encode(_ value: Bool) throws { slot.append().state = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { slot.append().state = .value(.string(value)) }
    mutating func encode(_ value: Double) throws { slot.append().state = .value(Slot.number(value)) }
    mutating func encode(_ value: Int) throws { slot.append().state = .value(.int(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws { try slot.append().encode(value, path: codingPath) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        SlotEncoder(slot: slot.append(), codingPath: codingPath).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        SlotEncoder(slot: slot.append(), codingPath: codingPath).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { SlotEncoder(slot: slot.append(), codingPath: codingPath) }
}

private struct SingleSlot: SingleValueEncodingContainer, ForwardsNumbers {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { slot.state = .value(.null) }
    mutating func encode(_ value: Bool) throws { slot.state = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { slot.state = .value(.string(value)) }
    mutating func encode(_ value: Double) throws { slot.state = .value(Slot.number(value)) }
    mutating func encode(_ value: Int) throws { slot.state = .value(.int(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws { try slot.encode(value, path: codingPath) }
}

/// The unkeyed and single-value containers take every number as `Int` or `Double`.
private protocol ForwardsNumbers {
    mutating func encode(_ value: Int) throws
    mutating func encode(_ value: Double) throws
}

extension ForwardsNumbers {
    mutating func encode(_ value: Float) throws { try encode(Double(value)) }
    mutating func encode(_ value: Int8) throws { try encode(Int(value)) }
    mutating func encode(_ value: Int16) throws { try encode(Int(value)) }
    mutating func encode(_ value: Int32) throws { try encode(Int(value)) }
    mutating func encode(_ value: Int64) throws { try encode(Int(value)) }
    mutating func encode(_ value: UInt) throws { try encode(Int(value)) }
    mutating func encode(_ value: UInt8) throws { try encode(Int(value)) }
    mutating func encode(_ value: UInt16) throws { try encode(Int(value)) }
    mutating func encode(_ value: UInt32) throws { try encode(Int(value)) }
    mutating func encode(_ value: UInt64) throws { try encode(Int(value)) }
}
