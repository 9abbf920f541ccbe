import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness
import PipeResults

struct CompareCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two result files, or measure two configurations interleaved and compare them.",
        discussion: """
        Configurations are matched by their parameter columns (workload, transport, sizes, \
        engine tunables, placement; see `pipebench columns`). For each metric both files have \
        (throughput_GBps, cpu_ns_per_B, p50_ns, p99_ns) it reports the ratio of medians B/A \
        with a bootstrap 95% confidence interval and the two-sided Mann-Whitney U p-value. \
        A change is flagged only when the interval excludes 1 AND the ratio is beyond \
        --threshold; fewer than 3 repetitions on a side give no verdict.

        Exit status (as package-benchmark): 0 no significant change, 2 a regression, 4 only \
        improvements; 65 when a file is not a pipebench CSV/JSON of this schema.

        --run A --vs B measures two configurations now, interleaved (A B A B …) in one run, \
        and compares them the same way. Each side is a config file (JSON or TOML) or a list \
        of key=value parameters; flags given to compare are the base both start from.

        Examples:
          pipebench compare results/before.csv results/after.csv
          pipebench compare before.csv after.csv --threshold 10 --ignore pipe_mindirect_B
          pipebench compare --run "mindirect=8K" --vs "mindirect=1G" --transport engine --write-size 64K
          pipebench compare --run "transport=engine wait=park" --vs "transport=linux-pipe" --workload pingpong
        """
    )

    @Argument(help: ArgumentHelp("Baseline and candidate result files (CSV or JSON).", valueName: "file"))
    var files: [String] = []
    @Option(name: .customLong("threshold"), help: ArgumentHelp("Smallest change to flag, in percent (default 5).", valueName: "percent"))
    var threshold: String = "5"
    @Option(name: .customLong("ignore"), help: ArgumentHelp("Parameter column to leave out of the matching (repeatable).", valueName: "column"))
    var ignore: [String] = []
    @Option(name: .customLong("run"), help: ArgumentHelp("Measure this configuration as the baseline (key=value list or config file).", valueName: "config"))
    var runA: String?
    @Option(name: .customLong("vs"), help: ArgumentHelp("…against this one.", valueName: "config"))
    var runB: String?
    @OptionGroup(title: "Base configuration for --run/--vs") var params: ParameterOptions
    @OptionGroup(title: "Run and output (for --run/--vs)") var runOptions: RunOptions

    func execute() throws {
        var t = threshold.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%") { t.removeLast() }
        guard let percent = Double(t), percent >= 0, percent.isFinite else {
            throw CLIError.usage("--threshold '\(threshold)': give a percentage, e.g. --threshold 5")
        }
        let a: ResultsTable, b: ResultsTable
        var ignoring = Set(ignore)
        if runA != nil || runB != nil {
            guard let runA, let runB else { throw CLIError.usage("--run and --vs go together: --run CONFIG_A --vs CONFIG_B") }
            guard files.isEmpty else { throw CLIError.usage("give either two result files or --run/--vs, not both") }
            var pa = try side(runA, "A")
            var pb = try side(runB, "B")
            // Name each side by what differs between them.
            let differing = SweepAxis.allCases.filter { pa.value($0) != pb.value($0) }
            pa.label = "A: " + pa.describe(varying: differing)
            pb.label = "B: " + pb.describe(varying: differing)
            guard pa.label.dropFirst(3) != pb.label.dropFirst(3) else {
                throw CLIError.usage("--run and --vs describe the same configuration; change a parameter on one side (e.g. --vs \"mindirect=1G\")")
            }
            let execution = Execution(
                command: "compare", points: [pa, pb], repetitions: runOptions.repetitions ?? 10,
                warmup: runOptions.warmup ?? 1, csvPath: runOptions.csv, jsonPath: runOptions.json,
                force: runOptions.force, progress: runOptions.progress, quiet: runOptions.quiet, printSummary: false)
            let outputs = try execution.prepare()
            let table = try execution.run(outputs)
            a = ResultsTable(rows: table.rows.indices.filter { table.value($0, "label") == pa.label }.map { table.rows[$0] })
            b = ResultsTable(rows: table.rows.indices.filter { table.value($0, "label") == pb.label }.map { table.rows[$0] })
            ignoring = Set(ResultsSchema.parameterColumns)
            if !runOptions.quiet && runOptions.progress != .json { print("Measured A = \(pa.label.dropFirst(3)) and B = \(pb.label.dropFirst(3)) interleaved; saved to \(outputs.csv)") }
        } else {
            guard files.count == 2 else {
                throw CLIError.usage("compare needs two result files (A.csv B.csv) or --run CONFIG_A --vs CONFIG_B")
            }
            a = try ResultsTable.read(path: files[0])
            b = try ResultsTable.read(path: files[1])
        }
        let comparison = try ResultsComparison(baseline: a, candidate: b, threshold: percent / 100, ignoring: ignoring)
        if !runOptions.quiet && !(runA != nil && runOptions.progress == .json) { print(Self.render(comparison)) }
        let code = comparison.exitCode
        if code != 0 { throw ExitCode(code) }
    }

    /// One side of --run/--vs: the command's flags, then the side's file or key=value list.
    func side(_ text: String, _ name: String) throws -> SweepPoint {
        var builder = PlanBuilder()
        try builder.apply(params)
        if FileManager.default.fileExists(atPath: text) {
            try builder.apply(configFile: text)
        } else {
            var tokens = text.split(whereSeparator: { $0 == " " || $0 == ";" }).map(String.init)[...]
            while let tok = tokens.popFirst() {
                var key = tok, value: String?
                if key.hasPrefix("--") { key.removeFirst(2) }
                if let eq = key.firstIndex(of: "=") {
                    value = String(key[key.index(after: eq)...])
                    key = String(key[..<eq])
                } else if tok.hasPrefix("--"), key == "verify" {
                    value = "on"
                } else if tok.hasPrefix("--") {
                    value = tokens.popFirst()
                }
                guard let value, let axis = SweepAxis(rawValue: SweepConfigFile.canonicalKey(key)) else {
                    throw CLIError.usage("--\(name == "A" ? "run" : "vs") '\(text)': '\(tok)' is not key=value with a parameter name (e.g. mindirect=8K) and no such file exists")
                }
                try builder.spec.set(axis, [value])
            }
        }
        let points = try builder.spec.points()
        guard points.count == 1 else {
            throw CLIError.usage("--\(name == "A" ? "run" : "vs") '\(text)' describes \(points.count) configurations; give one value per parameter")
        }
        return points[0]
    }

    static func render(_ c: ResultsComparison) -> String {
        var rows = [["configuration", "metric", "A median", "B median", "B/A [95% CI]", "p (MWU)", "n A/B", "verdict"]]
        for e in c.entries {
            let digits = e.metric.digits
            let ratio = e.ratio.map { String(format: "%.3f [%.3f, %.3f]", $0.estimate, $0.lower, $0.upper) } ?? ""
            let p = e.mannWhitney.map { String(format: "%.3g", $0.pValue) } ?? ""
            let verdict: String
            switch e.verdict {
            case .regression: verdict = "REGRESSION"
            case .improvement: verdict = "improvement"
            default: verdict = e.verdict.rawValue
            }
            rows.append([e.label, e.metric.title, fixed(e.medianA, digits), fixed(e.medianB, digits), ratio, p, "\(e.countA)/\(e.countB)", verdict])
        }
        var out = TextTable.render(rows, leftAligned: [0, 1, 7])
        let reg = c.entries.filter { $0.verdict == .regression }.count
        let imp = c.entries.filter { $0.verdict == .improvement }.count
        out += "\n\n\(reg) regression(s), \(imp) improvement(s), \(c.entries.count - reg - imp) without a significant change beyond \(String(format: "%g", c.threshold * 100))%."
        if !c.onlyInA.isEmpty { out += "\nOnly in A (not compared): \(c.onlyInA.joined(separator: "; "))" }
        if !c.onlyInB.isEmpty { out += "\nOnly in B (not compared): \(c.onlyInB.joined(separator: "; "))" }
        return out
    }

    static func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
}

struct ExportCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert results between CSV, JSON and Markdown; concatenate shards.",
        discussion: """
        Reads one or more pipebench CSV or JSON files (checking their schema) and writes \
        their rows, in order, as CSV or JSON (lossless: `export a.csv --to json` then back \
        gives the same CSV) or as a Markdown summary: one line per configuration with \
        medians and 95% intervals, then the machine and commit; or as the tables a run \
        prints when it ends (`summary`: ratios to linux-pipe paired by round, placement \
        changes); or checked against a targets file (`targets`, with --targets): for each \
        target, each file's paired ratio of the two configurations it names, with its \
        interval, the goal and whether the median meets it (each file on its own: one run \
        each). The format comes from --to, else from the extension of --output; without \
        --output it goes to standard output.

        Examples:
          pipebench export results/run.csv --to markdown
          pipebench export results/run.csv --to summary
          pipebench export results/sweep-*.csv --to targets --targets results/targets.json
          pipebench export results/run.csv -o results/run.json
          pipebench export shard1.csv shard2.csv shard3.csv -o sweep.csv
          pipebench export results/run.json --to csv > run.csv
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, json, markdown, summary, targets }

    @Argument(help: ArgumentHelp("Result files (CSV or JSON by extension).", valueName: "file"))
    var inputs: [String]
    @Option(name: .customLong("to"), help: "csv, json, markdown, summary or targets.")
    var format: Format?
    @Option(name: .customLong("targets"), help: ArgumentHelp("The targets file that --to targets checks (pipebench-targets/1 JSON; results/targets.json is the report's).", valueName: "file"))
    var targetsFile: String?
    @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("Write here instead of standard output (atomically, never overwriting without --force).", valueName: "path"))
    var output: String?
    @Flag(name: .customLong("force"), help: "Overwrite --output if it exists.")
    var force = false

    func execute() throws {
        guard !inputs.isEmpty else { throw CLIError.usage("export needs at least one result file") }
        var chosen = format
        if chosen == nil, let output {
            switch (output as NSString).pathExtension.lowercased() {
            case "csv": chosen = .csv
            case "json": chosen = .json
            case "md", "markdown": chosen = .markdown
            default: throw CLIError.usage("-o \(output): cannot tell the format from the extension; add --to csv|json|markdown")
            }
        }
        let fmt = chosen ?? .markdown
        if fmt == .targets && targetsFile == nil {
            throw CLIError.usage("--to targets needs --targets FILE (for example results/targets.json)")
        }
        if fmt != .targets && targetsFile != nil {
            throw CLIError.usage("--targets FILE goes with --to targets")
        }
        if let output { try ResultsTable.checkWritable(path: output, force: force, flag: "-o") }
        let targets = try targetsFile.map { try ResultsTargets.read(path: $0) }   // before the results: fail fast
        let tables = try inputs.map { try ResultsTable.read(path: $0) }
        let table = ResultsTable.concatenate(tables)
        let text: String
        switch fmt {
        case .csv: text = table.csv()
        case .json: text = table.json()
        case .markdown: text = table.markdown()
        case .summary: text = SummaryPrinter.render(table) + "\n"
        case .targets:
            text = targets!.report(Array(zip(inputs, tables)).map { (name: $0.0, table: $0.1) })
        }
        if let output {
            try ResultsTable.writeAtomically(text, to: output, force: force)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

struct TopologyCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Show the machine: CPUs, NUMA nodes, distances, free memory, and what results record.",
        discussion: """
        Everything comes from the harness's EnvironmentInfo (libnuma, /proc, /sys), the same \
        record every result carries. --probe also measures the core-to-core round trip \
        (one cache line bounced between two spinning threads) for every pair of CPUs.

        Examples:
          pipebench topology
          pipebench topology --probe
          pipebench topology --json
        """
    )

    @Flag(name: .customLong("json"), help: "Print EnvironmentInfo as JSON.")
    var json = false
    @Flag(name: .customLong("probe"), help: "Measure the core-to-core round trip between every pair of CPUs.")
    var probe = false

    func execute() throws {
        let env = EnvironmentInfo.capture()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(env), as: UTF8.self))
            return
        }
        print("Host      \(env.hostname)")
        print("Kernel    \(env.kernel.sysname) \(env.kernel.release) \(env.kernel.machine)")
        print("CPU       \(env.cpuModel ?? "unknown")\(env.hypervisor ? " (virtual machine: vCPUs may move)" : "")")
        print("CPUs      \(env.onlineCPUs) online, \(env.configuredCPUs) configured, \(env.usableCPUs) usable by this process")
        print("THP       \(env.transparentHugePages ?? "unknown")    clocksource \(env.clocksource ?? "unknown")    pipe-max-size \(env.pipeMaxSize.map(SizeSpec.format) ?? "unknown")")
        print("Governor  \(env.cpuGovernor ?? "none exposed")")
        print("Build     Swift \(env.swiftCompiler) \(env.buildConfiguration), pipebench \(env.projectVersion), commit \(env.gitCommit)\(env.gitDirty == true ? " (dirty)" : "")")
        if !env.numa.available {
            print("\nNUMA      not available on this kernel: the harness runs without placement; node flags are refused")
        } else {
            print("\nNUMA nodes (max node \(env.numa.maxNode ?? 0))")
            var rows = [["node", "cpus", "memory", "free"] + env.numa.nodes.map { "d(\($0.id))" }]
            for n in env.numa.nodes {
                rows.append(["\(n.id)", formatCPUList(n.cpus), n.totalBytes.map { Self.gib($0) } ?? "?", n.freeBytes.map { Self.gib($0) } ?? "?"] + n.distances.map(String.init))
            }
            print(TextTable.render(rows))
            print("  (d(n): numa_distance to node n, 10 = local)")
        }
        if probe {
            // The CPUs this process may run on (pinning to any other fails).
            let cpus = Topology.usableCPUList()
            print("\nCore-to-core round trip, ns (median of batch means, \(CoreProbe.defaultRoundTrips) round trips)")
            var rows = [["cpu"] + cpus.map(String.init)]
            for a in cpus {
                var row = [String(a)]
                for b in cpus {
                    if a == b { row.append("-"); continue }
                    let r = try CoreProbe.measure(cpuA: a, cpuB: b, roundTrips: CoreProbe.defaultRoundTrips)
                    row.append(String(format: "%.0f", r.medianNs))
                }
                rows.append(row)
            }
            print(TextTable.render(rows))
        }
    }

    static func gib(_ b: Int64) -> String { String(format: "%.1f GiB", Double(b) / Double(1 << 30)) }
}

struct SysctlCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "sysctl",
        abstract: "List the engine's tunables and counters with their defaults and the flags that set them.",
        discussion: """
        The list is PipeSystem.sysctls: FreeBSD's kern.ipc.* names and the engine's own \
        engine.* ones. Access: RW settable at run time, RDTUN fixed when an instance is \
        created, RD a counter. Defaults are those of a new instance on this machine \
        (maxpipekva is autotuned to physical memory / 64).

        Examples:
          pipebench sysctl
          pipebench sysctl --json
        """
    )

    @Flag(name: .customLong("json"), help: "Print as JSON.")
    var json = false

    /// The flag that sets each tunable's sysctl.
    static let flags: [String: String] = Dictionary(uniqueKeysWithValues: EngineTunable.all.map { ($0.sysctl, "--" + $0.flag) })

    func execute() throws {
        let list = PipeSystem.sysctls
        if json {
            var items: [String] = []
            for s in list {
                let d = s.defaultValue.map(String.init) ?? "null"
                let f = Self.flags[s.name].map { "\"\($0)\"" } ?? "null"
                items.append("  {\"name\": \"\(s.name)\", \"access\": \"\(s.access.rawValue)\", \"default\": \(d), \"flag\": \(f), \"description\": \"\(s.description.replacingOccurrences(of: "\"", with: "\\\""))\"}")
            }
            print("[\n" + items.joined(separator: ",\n") + "\n]")
            return
        }
        var rows = [["name", "access", "default", "flag", "description"]]
        for s in list {
            var d = s.defaultValue.map { String($0) } ?? "(counter)"
            if let v = s.defaultValue, v >= 4096, v % 1024 == 0 { d += " (\(SizeSpec.format(v)))" }
            rows.append([s.name, s.access.rawValue, d, Self.flags[s.name] ?? "", s.description])
        }
        print(TextTable.render(rows, leftAligned: [0, 1, 3, 4]))
    }
}

struct ColumnsCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "columns",
        abstract: "Document the columns of the results CSV (\(ResultsSchema.csvVersion)), in order.",
        discussion: """
        Examples:
          pipebench columns
          pipebench columns --markdown
        """
    )

    @Flag(name: .customLong("markdown"), help: "Print a Markdown table.")
    var markdown = false

    func execute() throws {
        if markdown {
            print(ResultsSchema.markdownDocumentation(), terminator: "")
            return
        }
        var rows = [["#", "column", "type", "group", "meaning"]]
        for (i, c) in ResultsSchema.columns.enumerated() {
            rows.append(["\(i + 1)", c.name, c.type.rawValue, c.group.rawValue, c.doc])
        }
        print(TextTable.render(rows, leftAligned: [1, 2, 3, 4]))
    }
}
