import Foundation
import PipeResults

extension WorkloadKind {
    /// A recorded command's pipe traffic, replayed.
    public static let replay = ReplayWorkload.kind
}

extension Workload {
    public static func replay(_ config: ReplayConfig) -> Workload { ReplayWorkload.workload(config) }
}

extension ReplayWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "replay")
    public static let purpose = "a recorded command's pipe traffic (pipebench trace), replayed"
    public static let metric = WorkloadMetric.bytesPerSecond("aggregate throughput")

    /// The trace file; a replay point needs one.
    public static let trace = WorkloadParameter("trace", kind: .text, refusedElsewhere: true) { text in
        guard !text.isEmpty else { throw SweepError("--trace: give the path of a trace file (pipebench trace --out FILE records one)") }
        return text
    }
    public static let timing = WorkloadParameter("timing", kind: .text, default: ReplayTiming.asap.rawValue) { text in
        guard let t = ReplayTiming(rawValue: text) else {
            throw SweepError("--timing '\(text)' is unknown; use one of: \(ReplayTiming.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return t.rawValue
    }
    public static let parameters = [trace, timing]
    public static let usesStreamSizes = false
    public static let alwaysLabelled: [SweepAxis] = [.trace]

    /// `--trace` alone means this workload; beside other workloads, it must be among them.
    public static func prepare(_ sweep: SweepSpecification, base: inout SweepPoint) throws {
        try implied(by: .trace, sweep, base: &base)
    }

    public static func validate(_ point: SweepPoint) throws {
        if !ReplayConfig.transports.contains(point.transport) {
            throw SweepError("--workload replay runs over --transport \(ReplayConfig.transports.map(\.rawValue).joined(separator: ", ")) (got \(point.transport.rawValue))")
        }
        guard let path = point[trace] else {
            throw SweepError("--workload replay needs --trace FILE (pipebench trace --out FILE -- COMMAND records one)")
        }
        do { _ = try TraceCache.shared.load(path) } catch let e as TraceError {
            throw SweepError("--trace \(path): \(e.description)")
        }
    }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> ReplayConfig {
        let path = point[trace] ?? ""
        let loaded = Swift.Result { try TraceCache.shared.load(path) }
        var config = ReplayConfig(
            transport: point.transport, options: options,
            trace: (try? loaded.get()) ?? PipeTrace(header: .unknown, pipes: [], calls: []),
            traceName: ReplayConfig.name(ofTrace: path), timing: point.replayTiming, verify: point.verify,
            placement: point.placement)
        if case .failure(let e) = loaded { config.loadError = "\(e)" }
        return config
    }

    public static func measure(_ config: ReplayConfig) throws -> ReplayResult {
        if let e = config.loadError { throw HarnessError.invalidArgument("trace \(config.traceName): \(e)") }
        let r = try run(config)
        if config.verify, let e = r.integrityError { throw HarnessError.records(e) }
        return r
    }

    public static func probeCPUs(_ config: ReplayConfig) -> (Int, Int)? {
        guard let a = config.placement.writerCPU, let b = config.placement.readerCPU, a != b else { return nil }
        return (a, b)
    }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.set("trace", point[trace])
        row.set("timing", point[timing])
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        var rows = [["configuration", "timing", "pipes", "threads W+R", "MB", "GB/s", "95% CI", "wall ms", "recorded ms", "EPIPE"]
            + s.ratioHeaders]
        for g in groups {
            let (m, ci) = s.interval(g.samples("throughput_GBps"), format: "%.3f")
            let mb = g.median("bytes_B").map { String(format: "%.1f", $0 / 1e6) } ?? ""
            let wall = g.median("wall_ns").map { String(format: "%.2f", $0 / 1e6) } ?? ""
            let span = g.median("recorded_span_ns").map { String(format: "%.2f", $0 / 1e6) } ?? ""
            rows.append(s.row([g.label, s.value(g, "timing"), s.value(g, "trace_pipes"),
                               "\(s.value(g, "replay_writers"))+\(s.value(g, "replay_readers"))", mb, m, ci, wall, span,
                               s.value(g, "epipe_writes")] + s.ratioCells(g, "throughput_GBps")))
        }
        return "Replay: a recorded command's pipes, every one at once, a thread per process and end (aggregate GB/s, higher is better; wall: the replay's time, recorded: the recording's own time on its pipes)\n"
            + TextTable.render(rows)
    }
}

extension SweepAxis {
    public static let trace = SweepAxis.parameter(ReplayWorkload.trace)
    public static let timing = SweepAxis.parameter(ReplayWorkload.timing)
}

extension SweepPoint {
    /// replay: how the calls are spaced.
    public var replayTiming: ReplayTiming {
        self[ReplayWorkload.timing].flatMap(ReplayTiming.init(rawValue:)) ?? .asap
    }
}

extension ReplayConfig {
    /// `results/traces/cat-sha256.ndjson` -> `cat-sha256`.
    public static func name(ofTrace path: String) -> String {
        let file = (path as NSString).lastPathComponent
        return file.hasSuffix(".ndjson") ? String(file.dropLast(7)) : file
    }
}

extension PipeTrace.Header {
    /// A header for a trace that could not be read (its replay fails with the reason).
    static let unknown = PipeTrace.Header(
        command: [], recorded: "", exitStatus: 0, tracer: "", tools: [],
        machine: PipeTrace.Machine(hostname: "", kernel: "", arch: "", cpuModel: nil, onlineCPUs: 0), pipebench: "")
}

/// Trace files read once per process: a sweep's points and repetitions share them.
final class TraceCache: @unchecked Sendable {
    static let shared = TraceCache()
    private let lock = NSLock()
    private var traces: [String: PipeTrace] = [:]

    func load(_ path: String) throws -> PipeTrace {
        lock.lock()
        defer { lock.unlock() }
        if let t = traces[path] { return t }
        let t = try PipeTrace.read(from: path)
        traces[path] = t
        return t
    }
}

extension ReplayResult: WorkloadResult {
    public var value: Double { bytesPerSecond }
    public var timedNs: Int64? { wallNs }

    public func record(into row: inout ResultsRow) {
        row.throughput(bytesPerSecond: bytesPerSecond, wallNs: wallNs, bytes: bytesRead,
                       writerCPUNs: writerCPUNs, readerCPUNs: readerCPUNs, cpuNsPerByte: cpuNsPerByte,
                       writeCalls: writeCalls, readCalls: readCalls)
        row.int("trace_pipes", pipes)
        row.int("trace_calls", traceCalls)
        row.int("replay_writers", writerThreads)
        row.int("replay_readers", readerThreads)
        row.int("recorded_B", recordedBytesRead)
        row.int("recorded_span_ns", recordedSpanNs)
        row.int("epipe_writes", brokenPipeWrites)
        row.bool("integrity_ok", verified ? integrityOK : nil)
        row.activity(writer: writerActivity, reader: readerActivity, engine: transport == TransportKind.engine.rawValue)
    }
}

extension Repetition {
    /// The replay result of this repetition, if it is one.
    public var replay: ReplayResult? { result as? ReplayResult }
}
