import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness
import PipeResults

/// The parameters of a configuration, one flag per harness parameter. Every flag takes a
/// value (sizes: 64, 4K, 1M, 1G; lists: a,b,c; ranges: 4K..1M doubles, 0..3 counts) and may
/// be repeated; `run` accepts lists only for --transport.
struct ParameterOptions: ParsableArguments {
    @Option(name: .customLong("workload"), help: ArgumentHelp(WorkloadKind.listed() + ".", valueName: "name"))
    var workload: [String] = []
    @Option(name: .customLong("transport"), help: ArgumentHelp("engine, linux-pipe, linux-vmsplice, unix-socket, spsc-ring, memcpy (comma list).", valueName: "list"))
    var transport: [String] = []
    @Option(name: .customLong("write-size"), help: ArgumentHelp("stream, pairs, fanin: bytes per write; contend: bytes per record (default 64K).", valueName: "size"))
    var writeSize: [String] = []
    @Option(name: .customLong("read-size"), help: ArgumentHelp("stream, pairs, fanin, contend: bytes per read (default: the write size).", valueName: "size"))
    var readSize: [String] = []
    @Option(name: .customLong("total"), help: ArgumentHelp("stream: bytes per repetition; pairs: per pair; fanin, contend: per writer; or auto (from 2048 writes, 16M to 256M, split among pairs or writers, at least 1M each, grown in the warm-up until a repetition lasts --min-time).", valueName: "size"))
    var total: [String] = []
    @Option(name: .customLong("message-size"), help: ArgumentHelp("pingpong: bytes each way (default 1).", valueName: "size"))
    var messageSize: [String] = []
    @Option(name: .customLong("iterations"), help: ArgumentHelp("pingpong: round trips per repetition (default 10000).", valueName: "n"))
    var iterations: [String] = []
    @Option(name: .customLong("warmup-iterations"), help: ArgumentHelp("pingpong: unrecorded round trips first (default min(1000, iterations/10)).", valueName: "n"))
    var warmupIterations: [String] = []
    @Option(name: .customLong("rate"), help: ArgumentHelp("pingpong: fixed rate in messages/s, latency from the intended send time.", valueName: "per-second"))
    var rate: [String] = []
    @Option(name: .customLong("pairs"), help: ArgumentHelp("pairs: writer/reader pairs at once, 1 to 512 (default 2).", valueName: "k"))
    var pairs: [String] = []
    @Option(name: .customLong("pair-cpus"), help: ArgumentHelp("pairs: WRITER:READER CPUs per pair, comma-separated (0:1,1:0), one entry for every pair (0:1), or spread (round-robin over the usable CPUs). Repeat the flag to sweep layouts.", valueName: "layout"))
    var pairCPUs: [String] = []
    @Option(name: .customLong("writers"), help: ArgumentHelp("fanin: writer threads, one pipe each; contend: writer threads on the one pipe; 1 to 512 (default 4).", valueName: "k"))
    var writers: [String] = []
    @Option(name: .customLong("mux"), help: ArgumentHelp("fanin: how the reader waits: poll (engine or Linux poll) or kqueue (engine only). Default poll.", valueName: "poll|kqueue"))
    var mux: [String] = []
    @Option(name: .customLong("readers"), help: ArgumentHelp("contend: reader threads on the one pipe, 1 to 512 (default 1).", valueName: "r"))
    var readers: [String] = []
    @Option(name: .customLong("socket"), help: ArgumentHelp("contend over unix-socket: seqpacket (every record a message, the default) or stream.", valueName: "seqpacket|stream"))
    var socket: [String] = []
    @Option(name: .customLong("thread-cpus"), help: ArgumentHelp("contend, jobserver: CPUs the threads take round-robin, writers first (0,1), or spread (over the usable CPUs); unset: writers on --writer-cpu, readers on --reader-cpu. Repeat the flag to sweep layouts.", valueName: "layout"))
    var threadCPUs: [String] = []
    @Option(name: .customLong("workers"), help: ArgumentHelp("jobserver: worker threads sharing the token pipe, 1 to 512 (default 8).", valueName: "n"))
    var workers: [String] = []
    @Option(name: .customLong("tokens"), help: ArgumentHelp("jobserver: one-byte tokens in the pipe, 1 to 256 (default 2).", valueName: "t"))
    var tokens: [String] = []
    @Option(name: .customLong("work"), help: ArgumentHelp("jobserver: busy work per token taken, a duration up to 1s (default 10us; 0: hand-offs alone).", valueName: "time"))
    var work: [String] = []
    @Option(name: .customLong("takes"), help: ArgumentHelp("jobserver: tokens taken per repetition, all workers together (default 20000).", valueName: "n"))
    var takes: [String] = []
    @Option(name: .customLong("trace"), help: ArgumentHelp("replay: the trace file to replay (pipebench trace --out FILE -- COMMAND records one); implies --workload replay.", valueName: "file"))
    var trace: [String] = []
    @Option(name: .customLong("timing"), help: ArgumentHelp("replay: asap (no gaps: what the pipe costs) or recorded (each call after its recorded gap, spent busy). Default asap.", valueName: "asap|recorded"))
    var timing: [String] = []
    @Option(name: .customLong("kernel-pipe-size"), help: ArgumentHelp("linux-pipe, linux-vmsplice: F_SETPIPE_SZ for every kernel pipe, a power of two of at least a page, at most /proc/sys/fs/pipe-max-size unless root (default: the kernel's, 64K).", valueName: "size"))
    var kernelPipeSize: [String] = []
    @OptionGroup(title: "Engine tunables") var engine: EngineParameterOptions
    @Option(name: .customLong("kva-tier"), help: ArgumentHelp("kva-pressure: fill pipekva above this % of maxpipekva with idle pipes first (100 = exhausted); implies --workload kva-pressure.", valueName: "percent"))
    var kvaTier: [String] = []
    @Option(name: .customLong("placement"), help: ArgumentHelp("A placement preset: same-core, cross-core (two CPUs of one node), same-node (any CPUs of one node), cross-node (writer and its buffer on one node, reader and its buffer on the farthest other, the arena on the writer's). --writer-node and --reader-node choose its nodes; it cannot be combined with the CPU flags or --memory-node. Repeat or list to sweep.", valueName: "preset"))
    var placement: [String] = []
    @Option(name: .customLong("writer-cpu"), help: ArgumentHelp("Pin the writer (pingpong: client; pairs, fanin, contend: every writer; jobserver: every worker) to this CPU.", valueName: "cpu"))
    var writerCPU: [String] = []
    @Option(name: .customLong("reader-cpu"), help: ArgumentHelp("Pin the reader (pingpong: server; pairs, contend: every reader) to this CPU.", valueName: "cpu"))
    var readerCPU: [String] = []
    @Option(name: .customLong("writer-node"), help: ArgumentHelp("Run the writer on this NUMA node (numa_run_on_node).", valueName: "node"))
    var writerNode: [String] = []
    @Option(name: .customLong("reader-node"), help: ArgumentHelp("NUMA node of the reader.", valueName: "node"))
    var readerNode: [String] = []
    @Option(name: .customLong("memory-node"), help: ArgumentHelp("Bind both user buffers and the engine arena to this node (mbind); where they landed is recorded.", valueName: "node"))
    var memoryNode: [String] = []
    @Flag(name: .customLong("verify"), help: "Send a sequence-numbered payload and check every byte (fails the run on a wrong byte).")
    var verify = false

    /// Flag values by axis, in the order of the properties (a sweep orders them by
    /// `SweepAxis.allCases`). Each `[String]` option above is its axis by name: the property
    /// `writeSize` is `--write-size`, the axis `write-size`; a new parameter is one line above.
    var byAxis: [(SweepAxis, [String])] {
        var out: [(SweepAxis, [String])] = []
        for child in Mirror(reflecting: self).children {
            guard let label = child.label, let option = child.value as? Option<[String]> else { continue }
            let name = EngineParameterOptions.flagName(label)
            guard let axis = SweepAxis(rawValue: name) else { preconditionFailure("--\(name) is no sweep axis") }
            out.append((axis, option.wrappedValue))
        }
        out += engine.byTunable.map { (SweepAxis.engine($0.0), $0.1) }
        if verify { out.append((.verify, ["on"])) }
        return out.filter { !$0.1.isEmpty }
    }

    var isEmpty: Bool { byAxis.isEmpty }
}

/// The engine's tunables, one flag each (`EngineTunable.all`). argument-parser declares an
/// option as a stored property, so each tunable has its line here, named as its flag
/// (argument-parser spells `bigPipeSize` as `--big-pipe-size`); its help and value name come
/// from the tunable, the values reach the sweep through `byTunable`, and a test checks that
/// these properties and the table name the same flags.
struct EngineParameterOptions: ParsableArguments {
    @Option(help: .tunable("mindirect")) var mindirect: [String] = []
    @Option(help: .tunable("pipe-size")) var pipeSize: [String] = []
    @Option(help: .tunable("big-pipe-size")) var bigPipeSize: [String] = []
    @Option(help: .tunable("small-pipe-size")) var smallPipeSize: [String] = []
    @Option(help: .tunable("maxpipekva")) var maxpipekva: [String] = []
    @Option(help: .tunable("hold")) var hold: [String] = []
    @Option(help: .tunable("copy")) var copy: [String] = []
    @Option(help: .tunable("wait")) var wait: [String] = []
    @Option(help: .tunable("piperesize")) var piperesize: [String] = []

    /// Each tunable given on the command line, with its values, in table order.
    var byTunable: [(EngineTunable, [String])] {
        var given: [String: [String]] = [:]
        for child in Mirror(reflecting: self).children {
            if let label = child.label, let option = child.value as? Option<[String]> {
                given[Self.flagName(label)] = option.wrappedValue
            }
        }
        return EngineTunable.all.compactMap { t in
            guard let values = given[t.flag], !values.isEmpty else { return nil }
            return (t, values)
        }
    }

    /// `_bigPipeSize` -> `big-pipe-size`, `_pairCPUs` -> `pair-cpus`: as argument-parser names a
    /// property's long flag (a run of capitals is one word).
    static func flagName(_ label: String) -> String {
        var out = ""
        var previous: Character = "_"
        for ch in label.drop(while: { $0 == "_" }) {
            if ch.isUppercase && previous.isLowercase { out += "-" }
            out += ch.lowercased()
            previous = ch
        }
        return out
    }
}

extension ArgumentHelp {
    /// An engine tunable's help, from its `EngineTunable` entry.
    static func tunable(_ flag: String) -> ArgumentHelp {
        guard let t = EngineTunable.named(flag) else { preconditionFailure("no engine tunable --\(flag)") }
        return ArgumentHelp(t.help, valueName: t.valueName)
    }
}

/// How a run is repeated, where its results go and how it reports progress.
struct RunOptions: ParsableArguments {
    @Option(name: .customLong("repetitions"), help: ArgumentHelp("Measured repetitions of each configuration, interleaved A B A B (default: run 7, the default suite 15, sweep 5, compare --run 10).", valueName: "n"))
    var repetitions: Int?
    @Option(name: .customLong("warmup"), help: ArgumentHelp("Warm-up rounds run first and discarded (default 1).", valueName: "n"))
    var warmup: Int?
    @Option(name: .customLong("min-time"), help: ArgumentHelp("With --total auto: size each configuration's repetitions, in its warm-up, to last at least this long (default 100ms; 0: the byte default of 2048 writes).", valueName: "time"))
    var minTime: String?
    @Option(name: .customLong("precision"), help: ArgumentHelp("After --repetitions, add interleaved rounds until every configuration's median interval is within ± this of its median (e.g. 5%), or --max-repetitions or --max-time stops it.", valueName: "pct"))
    var precision: String?
    @Option(name: .customLong("max-repetitions"), help: ArgumentHelp("With --precision: the most rounds (default 50).", valueName: "n"))
    var maxRepetitions: Int?
    @Option(name: .customLong("max-time"), help: ArgumentHelp("With --precision: add no round after this long measuring (e.g. 10min; default: no limit).", valueName: "time"))
    var maxTime: String?
    @Option(name: .customLong("precision-rounds"), help: ArgumentHelp("With --precision: judge all rounds (default), or only those at the usual placement (usual: the core-to-core probe's rule).", valueName: "all|usual"))
    var precisionRounds: String?
    @Option(name: .customLong("csv"), help: ArgumentHelp("Write the CSV here (default: results/<command>-<UTC time>.csv, never overwriting).", valueName: "path"))
    var csv: String?
    @Option(name: .customLong("json"), help: ArgumentHelp("Also write the results as JSON here.", valueName: "path"))
    var json: String?
    @Flag(name: .customLong("force"), help: "Overwrite --csv/--json files that exist.")
    var force = false
    @Option(name: .customLong("progress"), help: ArgumentHelp("auto (a bar on a terminal), bar, json (NDJSON events on stdout), none.", valueName: "mode"))
    var progress: ProgressMode = .auto
    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "No progress and no table; only errors and warnings (pages off the node asked), on standard error.")
    var quiet = false
}

enum ProgressMode: String, ExpressibleByArgument, CaseIterable {
    case auto, bar, json, none
}

/// Builds the sweep a command describes: defaults, then a config file, then flags.
struct PlanBuilder {
    var spec = SweepSpecification()
    var repetitions: Int?
    var warmup: Int?
    var timing = TimingOptions()
    var csv: String?
    var json: String?
    var label: String?

    mutating func apply(configFile path: String) throws {
        for entry in try SweepConfigFile.load(path: path) {
            let key = SweepConfigFile.canonicalKey(entry.key)
            if let axis = SweepAxis(rawValue: key) {
                do {
                    try spec.set(axis, [entry.value.flagText])
                } catch let e as SweepError {
                    throw SweepError("\(path)\(entry.line > 0 ? ":\(entry.line)" : ""): \(e.message)")
                }
                continue
            }
            func int() throws -> Int {
                if case .integer(let i) = entry.value { return i }
                throw SweepError("\(path): '\(entry.key)' must be a whole number")
            }
            func string() throws -> String {
                if case .string(let s) = entry.value { return s }
                throw SweepError("\(path): '\(entry.key)' must be a string")
            }
            switch key {
            case "repetitions": repetitions = try int()
            case "warmup": warmup = try int()
            case "min-time": timing.minTime = entry.value.flagText
            case "precision": timing.precision = entry.value.flagText
            case "max-repetitions": timing.maxRepetitions = try int()
            case "max-time": timing.maxTime = entry.value.flagText
            case "precision-rounds": timing.precisionRounds = entry.value.flagText
            case "csv": csv = try string()
            case "json": json = try string()
            case "label": label = try string()
            default: throw SweepError("\(path): unknown key '\(entry.key)'")
            }
        }
    }

    mutating func apply(_ p: ParameterOptions) throws {
        for (axis, texts) in p.byAxis { try spec.set(axis, texts) }
    }

    mutating func apply(_ r: RunOptions) {
        if let v = r.repetitions { repetitions = v }
        if let v = r.warmup { warmup = v }
        timing.apply(r)
        if let v = r.csv { csv = v }
        if let v = r.json { json = v }
    }
}

/// How long a repetition lasts and when a run stops adding rounds, as given (flags or a
/// config file), checked by `resolved()`.
struct TimingOptions {
    var minTime: String?
    var precision: String?
    var maxRepetitions: Int?
    var maxTime: String?
    var precisionRounds: String?

    mutating func apply(_ r: RunOptions) {
        if let v = r.minTime { minTime = v }
        if let v = r.precision { precision = v }
        if let v = r.maxRepetitions { maxRepetitions = v }
        if let v = r.maxTime { maxTime = v }
        if let v = r.precisionRounds { precisionRounds = v }
    }

    /// What the runner is given.
    struct Resolved {
        var minTimeNs: Int64? = Runner.defaultMinTimeNs
        var precision: PrecisionTarget?
        var maxRepetitions = Runner.defaultMaxRepetitions
        var maxTimeNs: Int64?
    }

    func resolved(repetitions: Int) throws -> Resolved {
        var r = Resolved()
        if let minTime {
            guard let ns = DurationSpec.nanoseconds(minTime) else {
                throw CLIError.usage("--min-time '\(minTime)': give a time with its unit, e.g. 100ms or 2s (0: size by bytes)")
            }
            r.minTimeNs = ns
        }
        let limits = [("--max-repetitions", maxRepetitions != nil), ("--max-time", maxTime != nil), ("--precision-rounds", precisionRounds != nil)]
        guard let precision else {
            if let (flag, _) = limits.first(where: \.1) { throw CLIError.usage("\(flag) goes with --precision") }
            return r
        }
        let number = precision.hasSuffix("%") ? String(precision.dropLast()) : precision
        guard let pct = Double(number), pct > 0, pct < 100 else {
            throw CLIError.usage("--precision '\(precision)': give a percentage above 0 and below 100, e.g. 5%")
        }
        var usual = false
        switch precisionRounds ?? "all" {
        case "all": usual = false
        case "usual": usual = true
        case let other: throw CLIError.usage("--precision-rounds '\(other)' is unknown; use all or usual")
        }
        r.precision = PrecisionTarget(fraction: pct / 100, usualRoundsOnly: usual)
        if let maxRepetitions { r.maxRepetitions = maxRepetitions }
        guard r.maxRepetitions >= repetitions else {
            throw CLIError.usage("--max-repetitions \(r.maxRepetitions) is below --repetitions \(repetitions): --repetitions are the rounds run at least")
        }
        if let maxTime {
            guard let ns = DurationSpec.nanoseconds(maxTime), ns > 0 else {
                throw CLIError.usage("--max-time '\(maxTime)': give a time with its unit, e.g. 10min or 90s")
            }
            r.maxTimeNs = ns
        }
        return r
    }
}
