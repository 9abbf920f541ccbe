import PipeResults
extension WorkloadKind {
    /// Throughput of one writer/reader stream.
    public static let stream = StreamWorkload.kind
}

extension Workload {
    public static func stream(_ config: StreamConfig) -> Workload { StreamWorkload.workload(config) }
}

extension StreamWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "stream")
    public static let purpose = "throughput"
    public static let metric = WorkloadMetric.bytesPerSecond("throughput")

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> StreamConfig {
        StreamConfig(
            transport: point.transport, options: options, totalBytes: point.effectiveTotal,
            writeSize: point.writeSize, readSize: point.effectiveReadSize,
            verify: point.verify, placement: point.placement)
    }

    public static func measure(_ config: StreamConfig) throws -> StreamResult {
        let r = try run(config)
        if config.verify { try r.checkIntegrity() }
        return r
    }

    public static func probeCPUs(_ config: StreamConfig) -> (Int, Int)? {
        guard let a = config.writerCPU, let b = config.readerCPU else { return nil }
        return (a, b)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        var rows = [["configuration", "write", "GB/s", "95% CI", "min-max", "CPU ns/B"] + s.ratioHeaders]
        for g in groups {
            let xs = g.samples("throughput_GBps")
            let (m, ci) = s.interval(xs, format: "%.3f")
            let mm = xs.isEmpty ? "" : String(format: "%.2f-%.2f", xs.min()!, xs.max()!)
            let cpu = g.median("cpu_ns_per_B").map { String(format: "%.3f", $0) } ?? ""
            rows.append(s.row([g.label, s.size(g, "write_size_B"), m, ci, mm, cpu] + s.ratioCells(g, "throughput_GBps")))
        }
        return "Stream throughput (GB/s = 10^9 B/s, higher is better; ratio to linux-pipe = median of the per-round ratios, 95% CI)\n"
            + TextTable.render(rows)
    }
}

extension StreamResult: WorkloadResult {
    public var value: Double { bytesPerSecond }
    public var timedNs: Int64? { wallNs }

    /// Throws the first wrong byte, or a short stream.
    public func checkIntegrity() throws {
        if let m = firstMismatch { throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual) }
        if bytesReceived != totalBytes { throw HarnessError.unexpectedEOF(expected: totalBytes, received: bytesReceived) }
    }

    public func record(into row: inout ResultsRow) {
        row.throughput(bytesPerSecond: bytesPerSecond, wallNs: wallNs, bytes: bytesReceived,
                       writerCPUNs: writerCPUNs, readerCPUNs: readerCPUNs,
                       cpuNsPerByte: bytesReceived > 0 ? Double(writerCPUNs + readerCPUNs) / Double(bytesReceived) : nil,
                       writeCalls: writeCalls, readCalls: readCalls)
        row.list("writer_cpus_seen", writerCPUsSeen)
        row.list("reader_cpus_seen", readerCPUsSeen)
        row.int("kernel_pipe_size_B", kernelPipeSize)
        row.bool("integrity_ok", verified ? integrityOK : nil)
        row.memory(writer: writerMemory, reader: readerMemory, arena: arenaMemory)
        row.activity(writer: writerActivity, reader: transport == TransportKind.memcpy.rawValue ? nil : readerActivity,
                     engine: transport == TransportKind.engine.rawValue)
    }
}

extension Repetition {
    /// The stream result of this repetition, if it is one.
    public var stream: StreamResult? { result as? StreamResult }
}
