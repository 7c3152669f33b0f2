import Dispatch

extension Array {
    /// `map` on every core, `chunk` elements at a time; results in order. For pure transforms of
    /// large inputs (decoding files, encoding payloads); below two chunks it runs in place.
    public func concurrentMap<T>(chunk: Int = 64, _ transform: (Element) -> T) -> [T] {
        let chunks = (count + chunk - 1) / chunk
        guard chunks > 1 else { return map(transform) }
        return withoutActuallyEscaping(transform) { transform in
            let results = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
            let shared = UnsafeShared((self, results, transform))
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let (input, output, transform) = shared.value
                for i in (c * chunk)..<Swift.min(input.count, (c + 1) * chunk) {
                    (output.baseAddress! + i).initialize(to: transform(input[i]))
                }
            }
            defer { results.deallocate() }
            return Array<T>(unsafeUninitializedCapacity: count) { buffer, initialized in
                _ = buffer.baseAddress!.moveInitialize(from: results.baseAddress!, count: count)
                initialized = count
            }
        }
    }
}

/// Hands values to `concurrentPerform`, whose iterations read shared input and write disjoint
/// elements of the output.
private struct UnsafeShared<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
