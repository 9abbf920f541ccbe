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
        for col in ignore where !ResultsSchema.parameterColumns.contains(col) {
            throw CLIError.usage("--ignore \(col): not a parameter column; use one of: \(ResultsSchema.parameterColumns.joined(separator: ", "))")
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
            var timing = TimingOptions()
            timing.apply(runOptions)
            let execution = Execution(
                command: "compare", points: [pa, pb], repetitions: runOptions.repetitions ?? 10,
                warmup: runOptions.warmup ?? 1, csvPath: runOptions.csv, jsonPath: runOptions.json,
                force: runOptions.force, progress: runOptions.progress, quiet: runOptions.quiet,
                timing: try timing.resolved(repetitions: runOptions.repetitions ?? 10), printSummary: false)
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
