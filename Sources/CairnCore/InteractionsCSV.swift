/// The interactions CSV (`user_id,item_id,event,timestamp`, columns in any order, a header
/// first): its lines and fields, read the same way for training and for discovery. Errors never
/// quote the file (a dataset path pointed at a secret would print it).
public struct InteractionsCSV {
    public let user: Int, item: Int, event: Int, timestamp: Int
    /// Lines after the header, empty ones included (what a dataset "has").
    public var lineCount: Int { lines.count - 1 }
    let lines: [ArraySlice<UInt8>]
    let columns: Int

    /// Reads the header; throws when it lacks a column.
    public init(_ bytes: [UInt8]) throws {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard let headerLine = lines.first else { throw CairnError("the dataset is empty: it needs the header user_id,item_id,event,timestamp") }
        let header = Self.fields(headerLine).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
        func column(_ name: String) throws -> Int {
            guard let i = header.firstIndex(of: name) else {
                throw CairnError("dataset line 1 (\(header.count) column\(header.count == 1 ? "" : "s"), \(headerLine.count) bytes): the header has no '\(name)' column; "
                                    + "a dataset is CSV whose first line names the columns user_id,item_id,event,timestamp")
            }
            return i
        }
        (user, item, event, timestamp) = (try column("user_id"), try column("item_id"), try column("event"), try column("timestamp"))
        self.lines = lines
        columns = header.count
    }

    /// Each data line's fields (empty lines skipped), with its 1-based line number; a line with
    /// too few columns is an error naming it.
    public func forEachRow(_ body: (_ line: Int, _ fields: [ArraySlice<UInt8>]) throws -> Void) throws {
        let needed = max(user, item, event, timestamp)
        for (n, line) in lines.enumerated().dropFirst() {
            if line.isEmpty || (line.count == 1 && line.first == UInt8(ascii: "\r")) { continue }
            let f = Self.fields(line)
            guard f.count > needed else { throw CairnError("dataset line \(n + 1): \(f.count) columns, expected \(columns)") }
            try body(n + 1, f)
        }
    }

    /// Comma-separated fields; a trailing `\r` is dropped. (Quoted fields are not used by this format.)
    public static func fields(_ line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var l = line
        if l.last == UInt8(ascii: "\r") { l = l.dropLast() }
        return l.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    }

    /// A row's timestamp (unix seconds, or ISO 8601), or the error naming its line and column.
    public func time(_ fields: [ArraySlice<UInt8>], line: Int) throws -> Int64 {
        guard let t = Timestamp.parse(fields[timestamp]) else {
            throw CairnError("dataset line \(line), column \(timestamp + 1): the timestamp (\(fields[timestamp].count) bytes) is neither unix seconds nor ISO 8601 (2026-11-20T08:00:00Z)")
        }
        return t
    }
}
