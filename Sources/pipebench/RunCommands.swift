import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness

struct RunCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the default suite, or one configuration (per transport) given by flags.",
        discussion: """
        Without parameter flags (and without --config) this runs the default suite, about a \
        minute on a 2-core machine: stream throughput with 64 KiB writes over the engine's \
        buffered path (pipe_mindirect above the write size), its direct path (pipe_mindirect \
        8K), the Linux pipe and memcpy (one thread copying: the limit of one copy), and \
        1-byte pingpong round trips over the engine (spinning and parking waits) and the \
        Linux pipe. All configurations are measured interleaved in one run and printed with \
        their ratio to the Linux pipe.

        With parameter flags it runs one configuration; --transport may list several, \
        measured side by side (add linux-pipe to get ratios). For lists and ranges of other \
        parameters use `pipebench sweep`.

        Results: one CSV row per repetition, saved to results/run-<UTC time>.csv (never \
        overwritten) or to --csv PATH; see `pipebench columns` for the columns.

        Examples:
          pipebench run
          pipebench run --repetitions 11 --csv results/suite.csv
          pipebench run --transport engine,linux-pipe --write-size 1M --mindirect 16K
          pipebench run --workload pingpong --transport engine,linux-pipe --wait park --writer-cpu 0 --reader-cpu 1
          pipebench run --transport engine --hold mlock --verify --json out.json
          pipebench run --workload pairs --pairs 2 --pair-cpus 0:1,1:0 --transport engine,linux-pipe
          pipebench run --workload fanin --writers 8 --mux kqueue --transport engine --verify
          pipebench run --transport linux-pipe,linux-vmsplice --kernel-pipe-size 1M --write-size 256K
          pipebench run --config my-config.toml
          pipebench run --transport engine,linux-pipe --write-size 4K --precision 5% --max-time 2min
        """
    )

    @OptionGroup(title: "Configuration") var params: ParameterOptions
    @OptionGroup(title: "Run and output") var runOptions: RunOptions
    @Option(name: .customLong("config"), help: ArgumentHelp("Read parameters from a JSON or TOML file (flags override it).", valueName: "path"))
    var config: String?

    func execute() throws {
        var builder = PlanBuilder()
        let points: [SweepPoint]
        if params.isEmpty && config == nil {
            builder.apply(runOptions)
            points = Self.defaultSuite()
        } else {
            if let config { try builder.apply(configFile: config) }
            try builder.apply(params)
            builder.apply(runOptions)
            let others = builder.spec.varyingAxes.filter { $0 != .transport }
            if !others.isEmpty {
                throw CLIError.usage("\(others.map(\.flag).joined(separator: ", ")) \(others.count == 1 ? "has" : "have") several values: `run` measures one configuration (per transport); use `pipebench sweep` for lists and ranges")
            }
            points = try builder.spec.points()
        }
        let repetitions = builder.repetitions ?? (params.isEmpty && config == nil ? 15 : 7)
        let execution = Execution(
            command: "run", points: points, repetitions: repetitions, warmup: builder.warmup ?? 1,
            csvPath: builder.csv, jsonPath: builder.json, force: runOptions.force,
            progress: runOptions.progress, quiet: runOptions.quiet,
            timing: try builder.timing.resolved(repetitions: repetitions))
        let outputs = try execution.prepare()
        _ = try execution.run(outputs)
    }

    /// The default suite: what a newcomer asks first.
    static func defaultSuite() -> [SweepPoint] {
        // Cross-core, pinned: unpinned, the scheduler sometimes puts both threads on one CPU
        // and sometimes not, and on a VM the two cases differ by 10x in latency.
        let cpus = Topology.usableCPUList()
        let (writerCPU, readerCPU): (Int?, Int?) = cpus.count >= 2 ? (cpus[0], cpus[1]) : (nil, nil)
        func stream(_ label: String, _ transport: TransportKind, mindirect: Int? = nil) -> SweepPoint {
            var p = SweepPoint()
            p.workload = .stream
            p.transport = transport
            p.writeSize = 64 * 1024
            // The total is auto: each repetition lasts at least --min-time (100 ms).
            p.engine[EngineTunable.named("mindirect")!] = mindirect
            p.writerCPU = writerCPU
            p.readerCPU = readerCPU
            p = p.normalized()
            p.label = label
            return p
        }
        func pingpong(_ label: String, _ transport: TransportKind, wait: Int? = nil) -> SweepPoint {
            var p = SweepPoint()
            p.workload = .pingpong
            p.transport = transport
            p.messageSize = 1
            p.iterations = 20_000
            p.engine[EngineTunable.named("wait")!] = wait
            p.writerCPU = writerCPU
            p.readerCPU = readerCPU
            p = p.normalized()
            p.label = label
            return p
        }
        return [
            // pipe_mindirect above the write size: every byte goes through the pipe buffer.
            stream("engine-buffered", .engine, mindirect: 1 << 30),
            // The default pipe_mindirect (8K): 64 KiB writes take the direct path.
            stream("engine-direct", .engine),
            stream("linux-pipe", .linuxPipe),
            stream("memcpy", .memcpy),
            pingpong("pingpong engine-spin", .engine),
            pingpong("pingpong engine-park", .engine, wait: 0),
            pingpong("pingpong linux-pipe", .linuxPipe),
        ]
    }
}

struct SweepCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run the product of parameter lists and ranges, from flags or a config file.",
        discussion: """
        Every parameter flag takes a list (4K,8K,16K) or a range: sizes double (64..1M is \
        64, 128, …, 1M), other whole numbers count (0..3). The sweep is the Cartesian product \
        of all lists; parameters that do not apply to a point are dropped (--mindirect does \
        not multiply linux-pipe points, --write-size does not multiply pingpong points, --mux \
        kqueue applies to engine fan-in points only: Linux's poll; --kernel-pipe-size to \
        linux-pipe and linux-vmsplice points only). --pair-cpus takes one \
        layout per flag (its commas separate pairs); repeat the flag to sweep layouts. All \
        points are measured interleaved, round after round, so that drift of the machine \
        spreads over all of them.

        Config file: JSON ({"transport": ["engine", "linux-pipe"], "write-size": "64,4K..1M"}) \
        or this TOML subset: key = value lines, [workload] / [engine] / [placement] / [run] \
        tables, # comments, strings, integers, floats, booleans and arrays. Keys are the flag \
        names (write-size or write_size); [run] takes repetitions, warmup, csv, json, label. \
        Flags override the file.

        Batch schedulers: --shard I/N runs every N-th point starting with the I-th (1-based); \
        the shards are disjoint and cover the sweep. Their CSVs concatenate into one result: \
        `pipebench export shard*.csv --to csv -o all.csv`.

        Progress: a bar with ETA on a terminal; --progress json prints NDJSON events on \
        standard output (start, step, result, done) instead of the table; --quiet prints only errors and warnings.

        Examples:
          pipebench sweep --transport engine,linux-pipe --write-size 64,4K..1M
          pipebench sweep --transport engine --write-size 4K..1M --mindirect 4K,8K,16K
          pipebench sweep --workload pingpong --transport engine --wait park,spin,spin:5us
          pipebench sweep --kva-tier 0,50,75,90 --write-size 64K
          pipebench sweep --workload pairs --pairs 1..4 --transport engine,linux-pipe
          pipebench sweep --workload fanin --writers 2,8,32 --mux poll,kqueue --transport engine,linux-pipe
          pipebench sweep --workload pairs --pairs 2 --pair-cpus 0:0,1:1 --pair-cpus 0:1,1:0
          pipebench sweep --transport linux-pipe --kernel-pipe-size 4K..1M --write-size 64K
          pipebench sweep --config sweep.toml --shard 2/8 --progress json --csv shard2.csv
          pipebench sweep --config sweep.toml --list
        """
    )

    @OptionGroup(title: "Configuration") var params: ParameterOptions
    @OptionGroup(title: "Run and output") var runOptions: RunOptions
    @Option(name: .customLong("config"), help: ArgumentHelp("Read the sweep from a JSON or TOML file (flags override it).", valueName: "path"))
    var config: String?
    @Option(name: .customLong("shard"), help: ArgumentHelp("Run only shard I of N (1-based), for batch schedulers.", valueName: "I/N"))
    var shard: String?
    @Flag(name: .customLong("list"), help: "Print the points this (shard of the) sweep would run, and exit.")
    var list = false

    func execute() throws {
        var builder = PlanBuilder()
        if let config { try builder.apply(configFile: config) }
        try builder.apply(params)
        builder.apply(runOptions)
        guard !builder.spec.axes.isEmpty else {
            throw CLIError.usage("sweep needs parameters: give lists or ranges, e.g. --transport engine,linux-pipe --write-size 4K..1M, or --config FILE")
        }
        let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
        let all = try builder.spec.points()
        let points = shard.select(all)
        if list {
            print("\(points.count) of \(all.count) points (shard \(shard)):")
            for p in points { print("  \(p.label)") }
            return
        }
        let execution = Execution(
            command: "sweep", points: points, repetitions: builder.repetitions ?? 5, warmup: builder.warmup ?? 1,
            csvPath: builder.csv, jsonPath: builder.json, force: runOptions.force,
            progress: runOptions.progress, quiet: runOptions.quiet, shard: shard,
            timing: try builder.timing.resolved(repetitions: builder.repetitions ?? 5))
        let outputs = try execution.prepare()
        _ = try execution.run(outputs)
    }
}
