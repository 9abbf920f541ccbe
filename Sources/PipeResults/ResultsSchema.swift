import Foundation
import PipeEngine
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A problem with a results file: unreadable, of another schema, or not writable.
public struct ResultsError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable { case input, output }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// The columns of a pipebench results file, in their documented order. Version 6: version 5
/// plus the replay workload's trace, timing and what the replay moved (`addedInVersion6`);
/// version 5: version 4
/// plus the contend and jobserver workloads' parameters and measurements (`addedInVersion5`);
/// version 4: version 3
/// plus the placement preset, the pages found off the node asked for, whether the machine was
/// virtual or emulated, each side's scheduling and the engine's events, the time-sizing and precision target of the run (`addedInVersion4`); version 3: version 2
/// plus the engine's copy strategy and the core-to-core probe of each repetition
/// (`addedInVersion3`); version 2: version 1 plus the pairs and fanin columns and the kernel
/// pipe size asked for (`addedInVersion2`). Files of versions 1 to 5 are still read, their
/// rows moved into this version's columns with the newer ones empty.
public enum ResultsSchema {
    public static let version = 6
    public static let csvVersion = csvSchema(version)
    public static let jsonVersion = jsonSchema(version)
    public static let csvVersion1 = csvSchema(1)
    public static let jsonVersion1 = jsonSchema(1)

    static func csvSchema(_ v: Int) -> String { "pipebench-csv/\(v)" }
    static func jsonSchema(_ v: Int) -> String { "pipebench-json/\(v)" }

    /// The columns version 2 added; version 1's columns are the others, in the same order.
    public static let addedInVersion2: Set<String> = [
        "pairs", "pair_cpus", "writers", "mux", "kernel_pipe_size_asked_B",
        "stream_min_GBps", "stream_max_GBps", "streams_GBps", "mux_calls", "ready_events", "empty_reads",
    ]
    /// The columns version 3 added.
    public static let addedInVersion3: Set<String> = ["copy", "probe_ns"]
    /// The columns version 4 added.
    public static let addedInVersion4: Set<String> = Set([
        "placement", "memory_pages_misplaced", "env_virtualization", "env_emulated",
        "min_time_ns", "precision_pct", "precision_rounds",
    ] + schedulingColumns.map(\.name) + PipeEvent.allCases.map(eventColumn))
    /// The columns version 5 added.
    public static let addedInVersion5: Set<String> = Set([
        "readers", "socket", "thread_cpus", "workers", "tokens", "work_ns", "takes",
        "records", "records_per_s", "atomic_limit_B", "record_check",
        "handoffs_per_s", "fairness_max_min", "worker_takes_min", "worker_takes_max", "work_measured_ns",
    ] + latencyFamilies.flatMap { latencyColumns($0.prefix, $0.what) }.map(\.name))
    /// The columns version 6 added.
    public static let addedInVersion6: Set<String> = [
        "trace", "timing", "trace_pipes", "trace_calls", "replay_writers", "replay_readers",
        "recorded_B", "recorded_span_ns", "epipe_writes",
    ]
    /// Each version after the first and the columns it added.
    static let added: [(version: Int, columns: Set<String>)] = [
        (2, addedInVersion2), (3, addedInVersion3), (4, addedInVersion4), (5, addedInVersion5), (6, addedInVersion6),
    ]

    /// The columns of version `v` (1 through `version`), in order.
    public static func columnNames(ofVersion v: Int) -> [String] {
        columnNames.filter { name in !added.contains { v < $0.version && $0.columns.contains(name) } }
    }
    public static let version1ColumnNames: [String] = columnNames(ofVersion: 1)

    /// Version 3 as first written: `probe_ns` without `copy`, which came later under the same
    /// version (the six files of 2026-11-26 from 21:52 to 22:07 in `results/` are of it). Read
    /// as version 3 with `copy` empty.
    static let earlyVersion3ColumnNames: [String] = columnNames(ofVersion: 3).filter { $0 != "copy" }

    /// The version a row's `schema` field names (`pipebench-csv/N`, or the JSON form), if this
    /// pipebench reads it.
    static func readableVersion(_ schema: String, json: Bool) -> Int? {
        (1...version).first { (json ? jsonSchema($0) : csvSchema($0)) == schema }
    }

    /// What this pipebench reads, for messages.
    static func readableSchemas(json: Bool) -> String {
        let all = (1...version).reversed().map { json ? jsonSchema($0) : csvSchema($0) }
        return "\(all[0]) (and \(all.dropFirst().joined(separator: ", ")))"
    }

    public enum ColumnType: String, Sendable { case text, integer, number, boolean }
    public enum Group: String, Sendable, CaseIterable { case run, parameter, metric, scheduling, events, probe, environment }

    public struct Column: Sendable {
        public let name: String
        public let type: ColumnType
        public let group: Group
        public let doc: String
    }

    static func c(_ name: String, _ type: ColumnType, _ group: Group, _ doc: String) -> Column {
        Column(name: name, type: type, group: group, doc: doc)
    }

    /// An engine tunable's column: a number for sizes and the wait, the name of a choice, a
    /// boolean for a switch.
    static func engineColumn(_ t: EngineTunable) -> Column {
        c(t.column, columnType(of: t), .parameter, t.columnDescription)
    }

    static func columnType(of t: EngineTunable) -> ColumnType {
        switch t.kind {
        case .size, .spin: return .integer
        case .choice: return .text
        case .onOff: return .boolean
        }
    }

    /// The cell an engine tunable's value is written as.
    public static func engineCell(_ t: EngineTunable, _ value: Int) -> String {
        switch t.kind {
        case .size, .spin: return String(value)
        case .choice(let names): return names.indices.contains(value) ? names[value] : String(value)
        case .onOff: return value != 0 ? "true" : "false"
        }
    }

    /// getrusage(RUSAGE_THREAD) of each side over its measured window, every transport.
    static let schedulingColumns: [Column] = ["writer", "reader"].flatMap { side in [
        c("\(side)_vcsw", .integer, .scheduling, "Voluntary context switches of the \(side) (pingpong: \(side == "writer" ? "client" : "server"); pairs, fanin: all \(side)s) in its measured window: it blocked."),
        c("\(side)_ivcsw", .integer, .scheduling, "Involuntary context switches of the \(side): the scheduler took the CPU."),
        c("\(side)_user_ns", .integer, .scheduling, "User CPU time of the \(side) (getrusage: tick-grained)."),
        c("\(side)_sys_ns", .integer, .scheduling, "System CPU time of the \(side): time in the host kernel (system calls, faults)."),
    ] }

    /// The latency histograms recorded as `PREFIX_p50_ns` … `PREFIX_max_ns`.
    static let latencyFamilies: [(prefix: String, what: String)] = [
        ("enqueue", "contend: one record written (its write calls together), all writers"),
        ("dequeue", "contend: one read call, all readers (it includes the wait for data)"),
        ("token_wait", "jobserver: the wait for a token, from the read's call to its return, all workers"),
    ]

    /// One latency histogram's columns (HdrHistogram, 3 significant digits).
    static func latencyColumns(_ prefix: String, _ what: String) -> [Column] {
        [("p50", "median"), ("p90", "90th percentile"), ("p99", "99th percentile"), ("p999", "99.9th percentile"), ("max", "slowest")]
            .map { suffix, which in c("\(prefix)_\(suffix)_ns", .integer, .metric, "\(what): \(which), ns.") }
    }

    /// The column of one engine event: `ev_` and its name.
    public static func eventColumn(_ e: PipeEvent) -> String { "ev_\(e.name)" }

    static func eventColumnDefinition(_ e: PipeEvent) -> Column {
        c(eventColumn(e), .integer, .events, "engine: \(e.meaning) Both sides' measured windows together.")
    }

    public static let columns: [Column] = [
        c("schema", .text, .run, "Schema and version of the row: `\(csvVersion)`."),
        c("run_id", .text, .run, "One invocation of pipebench (UTC start time and process id); shards of a sweep have different ids."),
        c("label", .text, .run, "Readable name of the configuration, unique within a run (`engine-direct`, `stream engine w=4K md=8K`)."),
        c("repetition", .integer, .run, "0-based repetition of this configuration."),
        c("order", .integer, .run, "0-based position of this repetition in the run's interleaved sequence (A B C A B C …), for drift."),
        c("warmup_repetitions", .integer, .run, "Warm-up rounds run and discarded before the repetitions."),
        c("repetitions", .integer, .run, "Repetitions of each configuration in the run (with --precision: the rounds it took)."),
        c("min_time_ns", .integer, .run, "stream, pairs, fanin, contend, kva-pressure with --total auto: the time each repetition was sized to last at least (--min-time); total_B is then what calibration chose (in the warm-up, grown for later rounds when one came in shorter), and compare matches on this instead. Empty: the total was given, or --min-time 0."),
        c("precision_pct", .number, .run, "--precision: the run added rounds until every configuration's median interval was within ± this % of its median (or a limit stopped it). Empty: a fixed count."),
        c("precision_rounds", .text, .run, "--precision-rounds: `all` rounds judged, or only the `usual`-placement ones (the probe's rule)."),
        c("workload", .text, .parameter, "The workload, by the name `--workload` takes (`stream`, `pingpong`, …; `pipebench run --help` lists them all with what each measures)."),
        c("transport", .text, .parameter, "`engine`, `linux-pipe`, `linux-vmsplice`, `unix-socket`, `spsc-ring` or `memcpy`."),
        c("write_size_B", .integer, .parameter, "stream, pairs, fanin: bytes per write call; contend: bytes per record (one record per write)."),
        c("read_size_B", .integer, .parameter, "stream, pairs, fanin, contend: bytes asked for per read call."),
        c("total_B", .integer, .parameter, "stream: bytes sent per repetition; pairs: per pair; fanin, contend: per writer (contend: rounded up to whole records)."),
        c("message_size_B", .integer, .parameter, "pingpong: bytes each way per round trip."),
        c("iterations", .integer, .parameter, "pingpong: round trips recorded per repetition."),
        c("warmup_iterations", .integer, .parameter, "pingpong: round trips run first and not recorded."),
        c("rate_per_s", .number, .parameter, "pingpong: fixed send rate (messages/s); empty for closed loop."),
        c("pairs", .integer, .parameter, "pairs: writer/reader pairs running at once (2K threads)."),
        c("pair_cpus", .text, .parameter, "pairs: `--pair-cpus` as given, WRITER:READER per pair (`0:1,1:0`) or `spread`; empty: every pair placed by writer_cpu/reader_cpu."),
        c("writers", .integer, .parameter, "fanin: writer threads, each with a pipe of its own; contend: writer threads sharing the one pipe."),
        c("mux", .text, .parameter, "fanin: how the reader waits for ready pipes, `poll` or `kqueue`."),
        c("readers", .integer, .parameter, "contend: reader threads sharing the one pipe."),
        c("socket", .text, .parameter, "contend over unix-socket: `seqpacket` (SOCK_SEQPACKET, every record a message) or `stream` (SOCK_STREAM)."),
        c("thread_cpus", .text, .parameter, "contend, jobserver: `--thread-cpus` as given, CPUs taken round-robin by the threads (writers first), or `spread`; empty: placed by writer_cpu/reader_cpu."),
        c("workers", .integer, .parameter, "jobserver: worker threads sharing the token pipe."),
        c("tokens", .integer, .parameter, "jobserver: one-byte tokens in the pipe."),
        c("work_ns", .integer, .parameter, "jobserver: busy work per token taken (`--work`)."),
        c("takes", .integer, .parameter, "jobserver: tokens taken per repetition, all workers together."),
        c("trace", .text, .parameter, "replay: the trace file replayed (`--trace`, as given; `pipebench trace` records one)."),
        c("timing", .text, .parameter, "replay: `asap` (each thread's next call as soon as the last returns) or `recorded` (after each call's recorded gap, spent busy)."),
        c("kernel_pipe_size_asked_B", .integer, .parameter, "linux-pipe, linux-vmsplice: capacity asked of every kernel pipe with F_SETPIPE_SZ (`--kernel-pipe-size`); empty: the kernel default. What was in force: `kernel_pipe_size_B`."),
        c("verify", .boolean, .parameter, "Payload checked byte for byte."),
    ] + EngineTunable.all.map(engineColumn) + [
        c("kva_tier_pct", .integer, .parameter, "kva-pressure: `pipekva` filled to this percentage of `maxpipekva` first."),
        c("placement", .text, .parameter, "`--placement` preset (same-core, cross-core, same-node, cross-node) the CPUs and nodes of this row came from; empty: placed by the explicit flags, or not at all."),
        c("writer_cpu", .integer, .parameter, "CPU the writer (pingpong: client; pairs, fanin, contend: every writer; jobserver: every worker) was pinned to; empty = unpinned."),
        c("reader_cpu", .integer, .parameter, "CPU the reader (pingpong: server; pairs: every reader) was pinned to; empty = unpinned."),
        c("writer_node", .integer, .parameter, "NUMA node asked for the writer."),
        c("reader_node", .integer, .parameter, "NUMA node asked for the reader."),
        c("memory_node", .integer, .parameter, "NUMA node asked for the buffers."),
        c("metric", .text, .metric, "The number the runner summarises each repetition by: `throughput`, `p50 round trip` or `aggregate throughput` (pairs, fanin)."),
        c("value", .number, .metric, "That number, in `unit`."),
        c("unit", .text, .metric, "`B/s` or `ns`."),
        c("throughput_GBps", .number, .metric, "stream: bytes received / wall time, in 10^9 bytes per second; pairs, fanin, contend: all streams' bytes / wall time (aggregate)."),
        c("wall_ns", .integer, .metric, "stream, pairs, fanin, contend, jobserver: first thread start to last thread end; pingpong: the recorded round trips."),
        c("bytes_B", .integer, .metric, "stream: bytes the reader received; pairs, fanin, contend: all readers, all pipes."),
        c("writer_cpu_ns", .integer, .metric, "CPU time of the writer (pingpong: client) thread; pairs, fanin, contend: all writer threads together; jobserver: all workers."),
        c("reader_cpu_ns", .integer, .metric, "CPU time of the reader (pingpong: server) thread, 0 for memcpy; pairs: all reader threads together."),
        c("cpu_ns_per_B", .number, .metric, "stream, pairs, fanin, contend: (writer + reader CPU time) / bytes."),
        c("write_calls", .integer, .metric, "stream, pairs, fanin, contend: write calls made (short writes count), all writers."),
        c("read_calls", .integer, .metric, "stream, pairs, fanin, contend: read calls that returned data, all readers."),
        c("stream_min_GBps", .number, .metric, "pairs: slowest pair's throughput; fanin: slowest writer's (its bytes / time until the reader saw its end of file); contend: slowest writer's (its bytes / time until its last write)."),
        c("stream_max_GBps", .number, .metric, "pairs, fanin, contend: the fastest pair's (writer's)."),
        c("streams_GBps", .text, .metric, "pairs, fanin, contend: every pair's (writer's) throughput, in order, `;`-separated."),
        c("mux_calls", .integer, .metric, "fanin: poll or kevent calls the reader made."),
        c("ready_events", .integer, .metric, "fanin: descriptors those calls reported ready, all calls together."),
        c("empty_reads", .integer, .metric, "fanin: reads that found a pipe empty (EAGAIN)."),
        c("records", .integer, .metric, "contend: records received, all readers (bytes_B / write_size_B)."),
        c("records_per_s", .number, .metric, "contend: records received per second of wall time."),
        c("atomic_limit_B", .integer, .metric, "contend: the largest write the transport keeps whole: PIPE_BUF (engine 512, Linux 4096); empty for a socket (SOCK_SEQPACKET keeps every message, SOCK_STREAM promises nothing)."),
        c("record_check", .text, .metric, "contend --verify: `whole` (records within the atomic limit: each read whole, once, in every writer's order) or `bytes` (larger: loss and duplication only)."),
    ] + latencyColumns("enqueue", latencyFamilies[0].what) + latencyColumns("dequeue", latencyFamilies[1].what) + [
        c("handoffs_per_s", .number, .metric, "jobserver: tokens taken per second of wall time (the metric)."),
        c("fairness_max_min", .number, .metric, "jobserver: the most tokens one worker took over the fewest (1 is even; empty when a worker took none)."),
        c("worker_takes_min", .integer, .metric, "jobserver: the fewest tokens a worker took."),
        c("worker_takes_max", .integer, .metric, "jobserver: the most tokens a worker took."),
        c("work_measured_ns", .number, .metric, "jobserver: busy work actually done per take, mean (more than work_ns when a worker lost its CPU while working)."),
    ] + latencyColumns("token_wait", latencyFamilies[2].what) + [
        c("trace_pipes", .integer, .metric, "replay: pipes in the trace, each replayed over a channel of its own, all at once."),
        c("trace_calls", .integer, .metric, "replay: pipe calls in the recording (write_calls and read_calls count the replay's)."),
        c("replay_writers", .integer, .metric, "replay: writing threads, one per process and pipe that wrote in the recording."),
        c("replay_readers", .integer, .metric, "replay: reading threads, one per process and pipe that read."),
        c("recorded_B", .integer, .metric, "replay: bytes the recording's reads returned, all pipes (bytes_B is the replay's: equal unless something went wrong)."),
        c("recorded_span_ns", .integer, .metric, "replay: the recording's time on its pipes, its first call's start to its last call's end (strace's cost included); against wall_ns with timing recorded: how much of the pipeline's time the pipe decides."),
        c("epipe_writes", .integer, .metric, "replay: writes that ended with EPIPE because every reader had gone (as `yes | head` ends), recorded or not."),

        c("writer_cpus_seen", .text, .metric, "CPUs the writer ran on at start and end (`0;0`); pairs, fanin, contend: two per writer, in order; jobserver: two per worker."),
        c("reader_cpus_seen", .text, .metric, "CPUs the reader ran on at start and end (`-1` = no reader); pairs, contend: two per reader, in order."),
        c("kernel_pipe_size_B", .integer, .metric, "stream, pairs (the first pair's): kernel pipe capacity in force (F_GETPIPE_SZ), linux-pipe and linux-vmsplice only."),
        c("integrity_ok", .boolean, .metric, "Verified runs: every byte arrived and matched; empty when not verified."),
        c("rtt_count", .integer, .metric, "pingpong: round trips in the histogram."),
        c("rtt_min_ns", .integer, .metric, "pingpong: fastest round trip."),
        c("p50_ns", .integer, .metric, "pingpong: median round trip (HdrHistogram, 3 significant digits)."),
        c("p90_ns", .integer, .metric, "pingpong: 90th percentile round trip."),
        c("p99_ns", .integer, .metric, "pingpong: 99th percentile round trip."),
        c("p999_ns", .integer, .metric, "pingpong: 99.9th percentile round trip."),
        c("p9999_ns", .integer, .metric, "pingpong: 99.99th percentile round trip."),
        c("rtt_max_ns", .integer, .metric, "pingpong: slowest round trip."),
        c("rtt_mean_ns", .number, .metric, "pingpong: mean round trip."),
        c("late_sends", .integer, .metric, "pingpong fixed rate: sends already late when due."),
        c("writer_memory_node_seen", .integer, .metric, "Node holding most of the writer's (client's) buffer pages after the run (move_pages); pairs: when all pairs agree; fanin: writer 0's."),
        c("reader_memory_node_seen", .integer, .metric, "The same for the reader's (server's) buffer."),
        c("arena_memory_node_seen", .integer, .metric, "The same for the engine's KVA arena."),
        c("memory_pages_misplaced", .integer, .metric, "Pages of the buffers bound to a node (writer's, reader's, the engine's arena) found on another node after the repetition (move_pages); 0 = all where asked, empty = no memory node asked. pipebench warns when it is not 0."),
    ] + schedulingColumns + PipeEvent.allCases.map(eventColumnDefinition) + [
        c("kva_band", .text, .metric, "kva-pressure: regime the ballast put the engine in (`at-most-half`, `above-half`, `above-three-quarters`, `exhausted`)."),
        c("kva_ballast_pipes", .integer, .metric, "kva-pressure: idle ballast pipes made first."),
        c("kva_pipekva_before_pct", .number, .metric, "kva-pressure: pipekva as % of maxpipekva after the ballast, before the workload."),
        c("kva_buffer_size_start_B", .integer, .metric, "kva-pressure: the workload pipe's buffer size at creation."),
        c("kva_buffer_sizes_seen", .text, .metric, "kva-pressure: distinct buffer sizes seen during the run, in order (`16384;65536`)."),
        c("kva_buffer_size_end_B", .integer, .metric, "kva-pressure: buffer size at the end."),
        c("kva_pipefragretry", .integer, .metric, "kva-pressure: `kern.ipc.pipefragretry` after the workload (ballast included)."),
        c("kva_pipeallocfail", .integer, .metric, "kva-pressure: `kern.ipc.pipeallocfail` after the workload."),
        c("kva_piperesizefail", .integer, .metric, "kva-pressure: `kern.ipc.piperesizefail` after the workload."),
        c("kva_resizes", .integer, .metric, "kva-pressure: buffer reallocations (`engine.resizes`) during the workload."),
        c("kva_workload_error", .text, .metric, "kva-pressure: why the workload could not run (exhausted tier); its throughput is then 0."),
        c("probe_cpus", .text, .probe, "The two CPUs of the core-to-core probe (`0;1`)."),
        c("probe_before_ns", .number, .probe, "Median cache-line round trip between them just before the run."),
        c("probe_after_ns", .number, .probe, "The same just after the run."),
        c("probe_ns", .number, .probe, "The larger of two shorter probes, just before and just after this repetition: above the run's usual value, the host moved the vCPUs during it."),
        c("env_hostname", .text, .environment, "Host name."),
        c("env_kernel", .text, .environment, "Kernel release (`uname -r`)."),
        c("env_arch", .text, .environment, "Machine (`uname -m`)."),
        c("env_cpu_model", .text, .environment, "CPU model name."),
        c("env_hypervisor", .boolean, .environment, "Running in a VM (vCPUs may move)."),
        c("env_virtualization", .text, .environment, "The hypervisor, from its CPUID signature (KVM, QEMU TCG, Hyper-V, VMware, Xen, …); empty on bare metal."),
        c("env_emulated", .boolean, .environment, "The CPU is emulated in software (QEMU TCG): placement and behaviour are checked, timings mean nothing."),
        c("env_online_cpus", .integer, .environment, "Online CPUs."),
        c("env_usable_cpus", .integer, .environment, "CPUs this process may run on."),
        c("env_numa_nodes", .integer, .environment, "NUMA nodes (0 without NUMA support)."),
        c("env_thp", .text, .environment, "Transparent huge pages mode."),
        c("env_clocksource", .text, .environment, "Kernel clock source."),
        c("env_pipe_max_size_B", .integer, .environment, "`/proc/sys/fs/pipe-max-size`."),
        c("env_swift", .text, .environment, "Swift compiler that built pipebench."),
        c("env_build", .text, .environment, "`debug` or `release`."),
        c("env_version", .text, .environment, "PipeBench version."),
        c("env_git_commit", .text, .environment, "`git rev-parse HEAD` of the working directory."),
        c("env_git_dirty", .boolean, .environment, "The checkout had uncommitted changes (outside `results/`, where pipebench writes)."),
        c("env_timestamp", .text, .environment, "UTC start of the run, ISO 8601."),
    ]

    public static let columnNames: [String] = columns.map(\.name)
    static let index: [String: Int] = Dictionary(uniqueKeysWithValues: columnNames.enumerated().map { ($1, $0) })
    public static func column(_ name: String) -> Column? { index[name].map { columns[$0] } }

    /// The columns that identify a configuration (what `compare` matches on).
    public static let parameterColumns: [String] = columns.filter { $0.group == .parameter }.map(\.name)

    /// Markdown documentation of the columns, in order.
    public static func markdownDocumentation() -> String {
        var out = "| # | column | type | group | meaning |\n|---:|---|---|---|---|\n"
        for (i, c) in columns.enumerated() {
            out += "| \(i + 1) | `\(c.name)` | \(c.type.rawValue) | \(c.group.rawValue) | \(c.doc) |\n"
        }
        return out
    }
}

/// Rows of results, every cell as text ("" = not applicable), in schema column order.
public struct ResultsTable: Sendable, Equatable {
    public var rows: [[String]]

    public init(rows: [[String]] = []) { self.rows = rows }

    public var columns: [String] { ResultsSchema.columnNames }

    public func value(_ row: Int, _ column: String) -> String {
        guard let i = ResultsSchema.index[column] else { return "" }
        return rows[row][i]
    }

    /// A new empty row with the schema filled in.
    public static func emptyRow() -> [String] {
        var r = [String](repeating: "", count: ResultsSchema.columns.count)
        r[0] = ResultsSchema.csvVersion
        return r
    }

    public static func set(_ row: inout [String], _ column: String, _ value: String?) {
        guard let i = ResultsSchema.index[column] else { preconditionFailure("no column \(column)") }
        row[i] = value ?? ""
    }

    // MARK: CSV

    /// RFC 4180: CRLF line ends, fields with a comma, quote, CR or LF in double quotes,
    /// quotes doubled.
    public static func csvField(_ s: String) -> String {
        if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return s
    }

    public func csv() -> String {
        var out = columns.map(Self.csvField).joined(separator: ",") + "\r\n"
        for r in rows { out += r.map(Self.csvField).joined(separator: ",") + "\r\n" }
        return out
    }

    /// Splits RFC 4180 text into records (LF line ends accepted too). Throws on a quote
    /// that is never closed or text after a closing quote.
    public static func parseCSVRecords(_ text: String, name: String) throws -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var afterQuote = false
        var line = 1
        var it = Array(text.unicodeScalars)[...]
        var atRecordStart = true
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { it.removeFirst(); field.unicodeScalars.append("\"") }
                    else { quoted = false; afterQuote = true }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard field.isEmpty && !afterQuote else {
                    throw ResultsError(.input, "\(name):\(line): a quote in the middle of an unquoted field is not RFC 4180 CSV")
                }
                quoted = true
                atRecordStart = false
            case ",":
                record.append(field); field = ""; afterQuote = false; atRecordStart = false
            case "\r":
                if it.first == "\n" { continue }   // CRLF: the LF ends the record
                fallthrough
            case "\n":
                record.append(field)
                records.append(record)
                record = []; field = ""; afterQuote = false; atRecordStart = true
                line += 1
            default:
                guard !afterQuote else {
                    throw ResultsError(.input, "\(name):\(line): text after a closing quote is not RFC 4180 CSV")
                }
                field.unicodeScalars.append(c)
                atRecordStart = false
            }
        }
        if quoted { throw ResultsError(.input, "\(name):\(line): a quoted field is never closed") }
        if !atRecordStart || !field.isEmpty || !record.isEmpty {
            record.append(field)
            records.append(record)
        }
        return records
    }

    /// Reads a pipebench CSV, refusing any other schema with a message saying what it is.
    public static func parseCSV(_ text: String, name: String) throws -> ResultsTable {
        let records = try parseCSVRecords(text, name: name)
        guard let header = records.first, !(header.count == 1 && header[0].isEmpty) else {
            throw ResultsError(.input, "\(name) is empty; give a CSV written by pipebench (schema \(ResultsSchema.csvVersion))")
        }
        guard header.first == "schema" else {
            throw ResultsError(.input, "\(name) is not a pipebench results CSV (its first column is '\(header.first ?? "")', expected 'schema'); give a CSV written by pipebench")
        }
        let schema = records.count > 1 ? records[1].first ?? "" : ""
        // The version: the first row's, or for a file without rows, the one its header is.
        let version = schema.isEmpty
            ? (1...ResultsSchema.version).last { ResultsSchema.columnNames(ofVersion: $0) == header } ?? ResultsSchema.version
            : ResultsSchema.readableVersion(schema, json: false)
        guard let version else {
            throw ResultsError(.input, "\(name) has schema '\(schema)', this pipebench reads \(ResultsSchema.readableSchemas(json: false)); convert it with the pipebench that wrote it")
        }
        var columns = ResultsSchema.columnNames(ofVersion: version)
        if version == 3 && header == ResultsSchema.earlyVersion3ColumnNames { columns = header }
        guard header == columns else {
            let missing = columns.filter { !header.contains($0) }
            let extra = header.filter { !columns.contains($0) }
            throw ResultsError(.input, "\(name): columns differ from \(ResultsSchema.csvSchema(version)) (missing: \(missing.joined(separator: " ")); unknown: \(extra.joined(separator: " "))); give an unmodified pipebench CSV")
        }
        var rows: [[String]] = []
        for (n, r) in records.dropFirst().enumerated() {
            if r.count == 1 && r[0].isEmpty { continue }   // blank line
            guard r.count == header.count else {
                throw ResultsError(.input, "\(name): row \(n + 2) has \(r.count) fields, the header \(header.count); the file is damaged")
            }
            guard r[0] == ResultsSchema.csvSchema(version) else {
                throw ResultsError(.input, "\(name): row \(n + 2) has schema '\(r[0])', the file's first row \(ResultsSchema.csvSchema(version))")
            }
            rows.append(columns == ResultsSchema.columnNames ? r : upgradeRow(r, columns: columns))
        }
        return ResultsTable(rows: rows)
    }

    /// A row of an older version's `columns` as a row of this version (newer columns empty).
    static func upgradeRow(_ r: [String], columns: [String]) -> [String] {
        var out = emptyRow()
        for (j, column) in columns.enumerated() where j > 0 {
            out[ResultsSchema.index[column]!] = r[j]
        }
        return out
    }

    // MARK: files

    /// Reads a results file: CSV, or JSON as `json()` writes it (by extension).
    public static func read(path: String) throws -> ResultsTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ResultsError(.input, "cannot read '\(path)': check the path and its permissions")
        }
        let text = String(decoding: data, as: UTF8.self)
        if path.lowercased().hasSuffix(".json") { return try parseJSON(text, name: path) }
        return try parseCSV(text, name: path)
    }

    /// Checks, before any long work, that `path` can be written: its directory exists and
    /// takes a new file, and the file does not exist unless `force`.
    public static func checkWritable(path: String, force: Bool, flag: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let directory = dir.isEmpty ? "." : dir
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw ResultsError(.output, "\(flag) \(path): directory '\(directory)' does not exist; create it or choose another path")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            if isDir.boolValue { throw ResultsError(.output, "\(flag) \(path) is a directory; give a file path") }
            if !force { throw ResultsError(.output, "\(flag) \(path) already exists; choose another path or add --force to overwrite it") }
        }
        // Try it: access(2) says yes to root even on a read-only file system.
        let probe = directory + "/.pipebench-probe-\(getpid())"
        do {
            let fd = try FileDescriptor.open(probe, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec],
                                             permissions: [.ownerReadWrite, .groupRead, .otherRead])
            try? fd.close()
        } catch let e as SystemPackage.Errno {
            throw ResultsError(.output, "\(flag) \(path): cannot create files in '\(directory)' (\(e)); choose a writable path")
        }
        unlink(probe)
    }

    /// Writes atomically: a temporary file in the same directory, then link(2) to the final
    /// name, which fails rather than replace an existing file, or rename(2) with `force`.
    public static func writeAtomically(_ text: String, to path: String, force: Bool) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())"
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(tmp, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch let e as SystemPackage.Errno { throw ResultsError(.output, "cannot write '\(path)': \(e)") }
        do {
            try fd.closeAfter {
                try fd.writeAll(text.utf8)   // retries EINTR and short writes
                if fsync(fd.rawValue) != 0 { throw SystemPackage.Errno(rawValue: errno) }
            }
        } catch {
            unlink(tmp)
            throw ResultsError(.output, "cannot write '\(path)': \((error as? SystemPackage.Errno).map(String.init(describing:)) ?? "\(error)")")
        }
        if force {
            guard rename(tmp, path) == 0 else {
                let e = errno
                unlink(tmp)
                throw ResultsError(.output, "cannot write '\(path)': \(String(cString: strerror(e)))")
            }
        } else {
            let r = link(tmp, path)
            let e = errno
            unlink(tmp)
            guard r == 0 else {
                if e == EEXIST { throw ResultsError(.output, "\(path) already exists; choose another path or add --force to overwrite it") }
                throw ResultsError(.output, "cannot write '\(path)': \(String(cString: strerror(e)))")
            }
        }
    }

    /// `results/<prefix>-YYYYMMDD-HHMMSS.csv`, with -2, -3, … if taken.
    public static func timestampedPath(directory: String, prefix: String, ext: String, date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let base = "\(directory)/\(prefix)-\(f.string(from: date))"
        var path = "\(base).\(ext)"
        var n = 2
        while FileManager.default.fileExists(atPath: path) {
            path = "\(base)-\(n).\(ext)"
            n += 1
        }
        return path
    }

    /// Rows of several tables, in order (shards of one sweep, say).
    public static func concatenate(_ tables: [ResultsTable]) -> ResultsTable {
        ResultsTable(rows: tables.flatMap(\.rows))
    }
}
