/// One row of a results table being filled: cells by column name, as text.
public struct ResultsRow: Sendable {
    public private(set) var cells: [String] = ResultsTable.emptyRow()

    public init() {}

    public mutating func set(_ column: String, _ value: String?) { ResultsTable.set(&cells, column, value) }
    public mutating func int(_ column: String, _ value: (some BinaryInteger)?) { set(column, value.map { String($0) }) }
    public mutating func number(_ column: String, _ value: Double?) { set(column, value.map(ResultsTable.formatNumber)) }
    public mutating func bool(_ column: String, _ value: Bool?) { set(column, value.map { $0 ? "true" : "false" }) }
    /// CPUs (or sizes), `;`-separated.
    public mutating func list(_ column: String, _ value: [Int]?) { set(column, value.map { $0.map(String.init).joined(separator: ";") }) }
    /// Whether a cell is still empty.
    public func isEmpty(_ column: String) -> Bool { cells[ResultsSchema.index[column]!].isEmpty }

    /// The cells every stream-shaped result fills (stream, pairs, fanin, kva-pressure).
    public mutating func throughput(bytesPerSecond: Double, wallNs: Int64, bytes: Int, writerCPUNs: Int64, readerCPUNs: Int64,
                                    cpuNsPerByte: Double?, writeCalls: Int, readCalls: Int) {
        number("throughput_GBps", bytesPerSecond / 1e9)
        int("wall_ns", wallNs)
        int("bytes_B", bytes)
        int("writer_cpu_ns", writerCPUNs)
        int("reader_cpu_ns", readerCPUNs)
        number("cpu_ns_per_B", cpuNsPerByte)
        int("write_calls", writeCalls)
        int("read_calls", readCalls)
    }

    /// Per-stream throughput of a multi-stream result (pairs, fanin).
    public mutating func streams(_ bytesPerSecond: [Double]) {
        number("stream_min_GBps", bytesPerSecond.min().map { $0 / 1e9 })
        number("stream_max_GBps", bytesPerSecond.max().map { $0 / 1e9 })
        set("streams_GBps", bytesPerSecond.map { ResultsTable.formatNumber($0 / 1e9) }.joined(separator: ";"))
    }
}

extension ResultsTable {
    /// Numbers as the shortest text that reads back to the same Double.
    public static func formatNumber(_ x: Double) -> String {
        guard x.isFinite else { return "" }
        return x.description
    }
}
