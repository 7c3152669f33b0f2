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
/// Fields and items are kept in stored properties and grown in place (an array of thousands of
/// items stays linear to build).
private final class Slot {
    enum Kind { case empty, value, object, array }

    private(set) var kind: Kind = .empty
    private var scalar: JSONValue = .null
    /// An object's keys and values in the order they came; `index` once it has many keys.
    private var keys: [String] = []
    private var children: [Slot] = []
    private var index: [String: Int]?
    private var items: [Slot] = []

    var value: JSONValue {
        switch kind {
        case .empty: return .object([:])
        case .value: return scalar
        case .object:
            var object: [String: JSONValue] = [:]
            object.reserveCapacity(keys.count)
            for (key, child) in zip(keys, children) { object[key] = child.value }
            return .object(object)
        case .array: return .array(items.map(\.value))
        }
    }

    var count: Int { kind == .array ? items.count : 0 }

    func set(_ value: JSONValue) {
        reset(to: .value)
        scalar = value
    }

    func makeObject() { if kind != .object { reset(to: .object) } }

    func makeArray() { if kind != .array { reset(to: .array) } }

    private func reset(to kind: Kind) {
        self.kind = kind
        if !keys.isEmpty { (keys, children, index) = ([], [], nil) }
        if !items.isEmpty { items = [] }
    }

    func encode<T: Encodable>(_ value: T, path: [any CodingKey]) throws {
        // Compared by metatype (a pointer comparison): a chain of failing `as?` casts was most
        // of the cost of encoding a nested struct.
        if T.self == String.self { set(.string(Self.same(value, String.self))) }
        else if T.self == Int.self { set(.int(Self.same(value, Int.self))) }
        else if T.self == Double.self { set(Self.number(Self.same(value, Double.self))) }
        else if T.self == Bool.self { set(.bool(Self.same(value, Bool.self))) }
        else if T.self == JSONValue.self { set(Self.same(value, JSONValue.self)) }
        else { try value.encode(to: SlotEncoder(slot: self, codingPath: path)) }
    }

    /// `value` as the type it is (`T.self == U.self` was checked by the caller).
    @inline(__always)
    private static func same<T, U>(_ value: T, _ type: U.Type) -> U {
        withUnsafePointer(to: value) { UnsafeRawPointer($0).assumingMemoryBound(to: U.self).pointee }
    }

    /// A whole number within the exact range of `Double` reads back from JSON text as an integer.
    static func number(_ d: Double) -> JSONValue {
        if d.isFinite, d == d.rounded(), abs(d) < 9_007_199_254_740_992 { return .int(Int(d)) }
        return .double(d)
    }

    func child(_ key: String) -> Slot {
        makeObject()
        if let index {
            if let i = index[key] { return children[i] }
        } else if let i = keys.firstIndex(of: key) {
            return children[i]
        }
        let slot = Slot()
        keys.append(key)
        children.append(slot)
        if index != nil {
            index![key] = keys.count - 1
        } else if keys.count > 16 {
            index = Dictionary(uniqueKeysWithValues: zip(keys, keys.indices))
        }
        return slot
    }

    func append() -> Slot {
        makeArray()
        let slot = Slot()
        items.append(slot)
        return slot
    }
}

private struct SlotEncoder: Encoder {
    let slot: Slot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        slot.makeObject()
        return KeyedEncodingContainer(KeyedSlot<Key>(slot: slot, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        slot.makeArray()
        return UnkeyedSlot(slot: slot, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleSlot(slot: slot, codingPath: codingPath)
    }
}

private struct KeyedSlot<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { slot.child(key.stringValue).set(.null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { slot.child(key.stringValue).set(.bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { slot.child(key.stringValue).set(.string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { slot.child(key.stringValue).set(Slot.number(value)) }
    mutating func encode(_ value: Float, forKey key: Key) throws { slot.child(key.stringValue).set(Slot.number(Double(value))) }
    mutating func encode(_ value: Int, forKey key: Key) throws { slot.child(key.stringValue).set(.int(value)) }
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

    var count: Int { slot.count }

    mutating func encodeNil() throws { slot.append().set(.null) }
    mutating func encode(_ value: Bool) throws { slot.append().set(.bool(value)) }
    mutating func encode(_ value: String) throws { slot.append().set(.string(value)) }
    mutating func encode(_ value: Double) throws { slot.append().set(Slot.number(value)) }
    mutating func encode(_ value: Int) throws { slot.append().set(.int(value)) }

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

    mutating func encodeNil() throws { slot.set(.null) }
    mutating func encode(_ value: Bool) throws { slot.set(.bool(value)) }
    mutating func encode(_ value: String) throws { slot.set(.string(value)) }
    mutating func encode(_ value: Double) throws { slot.set(Slot.number(value)) }
    mutating func encode(_ value: Int) throws { slot.set(.int(value)) }

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
