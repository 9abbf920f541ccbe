import Foundation
import PipeHarness
import PipeResults
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs configurations with the harness's `Runner` (interleaved repetitions, warm-up, core
/// probe, environment), reports progress, and writes the results.
struct Execution {
    var command: String
    var points: [SweepPoint]
    var repetitions: Int
    var warmup: Int
    var csvPath: String?
    var jsonPath: String?
    var force: Bool
    var progress: ProgressMode
    var quiet: Bool
    var shard: Shard = .whole
    /// Time-sized repetitions and the precision target (`--min-time`, `--precision`, …).
    var timing = TimingOptions.Resolved()
    /// Print the summary table and "Saved …" line (compare --run prints its own comparison).
    var printSummary = true

    /// Where results will go, decided and checked before anything runs.
    struct Outputs {
        var csv: String
        var csvIsDefault: Bool
        var json: String?
    }

    /// Every check that can fail fast: counts, placement against this machine, outputs.
    func prepare() throws -> Outputs {
        guard repetitions >= 1 else { throw CLIError.usage("--repetitions \(repetitions): must be at least 1") }
        guard warmup >= 0 else { throw CLIError.usage("--warmup \(warmup): must not be negative") }
        guard !points.isEmpty else { throw CLIError.usage("nothing to run: this shard (\(shard)) of the sweep is empty; use fewer shards") }
        let env = EnvironmentInfo.capture()
        for p in points { try p.validatePlacement(env) }
        var outputs: Outputs
        if let csv = csvPath {
            try ResultsTable.checkWritable(path: csv, force: force, flag: "--csv")
            outputs = Outputs(csv: csv, csvIsDefault: false)
        } else {
            let dir = "results"
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
                do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                    throw CLIError.output("cannot create results/ in \(FileManager.default.currentDirectoryPath): choose an output with --csv PATH")
                }
            }
            let prefix = shard.count > 1 ? "\(command)-shard\(shard.index)of\(shard.count)" : command
            let path = ResultsTable.timestampedPath(directory: dir, prefix: prefix, ext: "csv")
            try ResultsTable.checkWritable(path: path, force: false, flag: "results/")
            outputs = Outputs(csv: path, csvIsDefault: true)
        }
        if let json = jsonPath {
            guard json != outputs.csv else { throw CLIError.usage("--json and --csv name the same file") }
            try ResultsTable.checkWritable(path: json, force: force, flag: "--json")
            outputs.json = json
        }
        return outputs
    }

    /// Measures, writes the CSV (and JSON), and returns the table.
    func run(_ outputs: Outputs) throws -> ResultsTable {
        let configurations = try points.map { RunConfiguration(name: $0.label, workload: try $0.makeWorkload()) }
        let reporter = ProgressReporter(
            // With a precision target the steps are the most it may take: the ETA is an upper bound.
            mode: quiet ? .none : progress, steps: (warmup + (timing.precision == nil ? repetitions : timing.maxRepetitions)) * points.count,
            command: command, configurations: points.count, shard: shard, csv: outputs.csv)
        reporter.start()
        var runner = Runner(warmupRepetitions: warmup, repetitions: repetitions, progress: { reporter.step($0) })
        runner.minTimeNs = timing.minTimeNs
        runner.precision = timing.precision
        runner.maxRepetitions = timing.maxRepetitions
        runner.maxTimeNs = timing.maxTimeNs
        let report: RunReport
        do {
            report = try runner.run(configurations)
        } catch {
            reporter.finishLine()
            throw error
        }
        reporter.finishLine()
        let table = ResultsTable(report: report, points: points, runID: Self.runID())
        var csvPath = outputs.csv
        do {
            try ResultsTable.writeAtomically(table.csv(), to: csvPath, force: force)
        } catch let e as ResultsError where outputs.csvIsDefault {
            // Another run took the name since we checked: take the next one, never overwrite.
            _ = e
            csvPath = ResultsTable.timestampedPath(directory: "results", prefix: command, ext: "csv")
            try ResultsTable.writeAtomically(table.csv(), to: csvPath, force: false)
        }
        if let json = outputs.json { try ResultsTable.writeAtomically(table.json(), to: json, force: force) }
        reporter.done(table: table, csv: csvPath, json: outputs.json)
        if quiet || progress == .json || !printSummary {
            for w in ResultsSummary.placementWarnings(table) { stderrWrite("pipebench: warning: \(w)\n") }
        }
        if printSummary && !quiet && progress != .json {
            print(SummaryPrinter.render(table, stop: report.precision == nil ? nil : stopText(report)))
            print("Saved \(table.rows.count) rows to \(csvPath)\(outputs.json.map { " and \($0)" } ?? "")")
        }
        return table
    }

    /// Why a run with a precision target stopped, in the words of its flags.
    func stopText(_ report: RunReport) -> String {
        switch report.stop {
        case .precisionReached, .fixedCount: return "stopped when it was reached"
        case .maxRepetitions: return "stopped by --max-repetitions \(timing.maxRepetitions)"
        case .maxTime: return "stopped by --max-time \(timing.maxTimeNs.map(DurationSpec.format) ?? "")"
        }
    }

    /// UTC time and process id: tells the runs (and shards) in a concatenated file apart.
    static func runID() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return "\(f.string(from: Date()))-\(getpid())"
    }
}

/// A progress bar with ETA on a terminal (standard error), or NDJSON events on standard output.
final class ProgressReporter: Sendable {
    struct State {
        var done = 0
        var started = Date()
        var lastDraw = Date.distantPast
        var drewBar = false
    }

    let mode: ProgressMode
    let steps: Int
    let command: String
    let configurations: Int
    let shard: Shard
    let csv: String
    let state = Mutex(State())

    init(mode: ProgressMode, steps: Int, command: String, configurations: Int, shard: Shard, csv: String) {
        var m = mode
        if m == .auto { m = isatty(STDERR_FILENO) != 0 ? .bar : .none }
        self.mode = m
        self.steps = steps
        self.command = command
        self.configurations = configurations
        self.shard = shard
        self.csv = csv
    }

    func start() {
        state.withLock { $0.started = Date() }
        if mode == .json {
            emit(["event": .s("start"), "command": .s(command), "configurations": .i(configurations),
                  "steps": .i(steps), "shard": .s(shard.description), "csv": .s(csv)])
        }
    }

    /// Called by the runner before each measurement with "warm-up 1/1: name" or
    /// "repetition 3/7: name".
    func step(_ line: String) {
        let (done, elapsed) = state.withLock { s -> (Int, Double) in
            let d = s.done
            s.done += 1
            return (d, Date().timeIntervalSince(s.started))
        }
        let eta: Double? = done > 0 ? elapsed / Double(done) * Double(steps - done) : nil
        let phase = line.hasPrefix("warm-up") ? "warm-up" : "repetition"
        let name = line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? line
        let round = line.split(separator: " ").dropFirst().first.map { String($0.dropLast()) } ?? ""
        switch mode {
        case .json:
            var event: [String: JSONValue] = [
                "event": .s("step"), "step": .i(done + 1), "steps": .i(steps), "phase": .s(phase),
                "round": .s(round), "configuration": .s(name), "elapsed_s": .d(elapsed),
            ]
            if let eta { event["eta_s"] = .d(eta) }
            emit(event)
        case .bar:
            let width = 30
            let filled = steps > 0 ? width * done / steps : 0
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let etaText = eta.map { "ETA \(Self.clock($0))" } ?? "ETA --:--"
            var text = "\r[\(bar)] \(done)/\(steps) \(etaText)  \(phase) \(round) \(name)"
            if text.count > 110 { text = String(text.prefix(110)) }
            stderrWrite(text + "\u{1B}[K")
            state.withLock { $0.drewBar = true }
        case .none, .auto:
            break
        }
    }

    func finishLine() {
        if mode == .bar && state.withLock({ $0.drewBar }) {
            let elapsed = state.withLock { Date().timeIntervalSince($0.started) }
            stderrWrite("\r[\(String(repeating: "#", count: 30))] \(steps)/\(steps) done in \(Self.clock(elapsed))\u{1B}[K\n")
        }
    }

    func done(table: ResultsTable, csv: String, json: String?) {
        guard mode == .json else { return }
        for g in ResultsSummary.groups(table) {
            var event: [String: JSONValue] = ["event": .s("result"), "configuration": .s(g.label), "n": .i(g.rows.count)]
            for m in ResultsSummary.metrics {
                if let v = g.median(m.column) { event["median_" + m.column] = .d(v) }
            }
            emit(event)
        }
        let elapsed = state.withLock { Date().timeIntervalSince($0.started) }
        var event: [String: JSONValue] = ["event": .s("done"), "csv": .s(csv), "rows": .i(table.rows.count), "elapsed_s": .d(elapsed)]
        if let json { event["json"] = .s(json) }
        emit(event)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    enum JSONValue {
        case s(String), i(Int), d(Double)
        var text: String {
            switch self {
            case .s(let v):
                var out = "\""
                for u in v.unicodeScalars {
                    switch u {
                    case "\"": out += "\\\""
                    case "\\": out += "\\\\"
                    default: if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
                    }
                }
                return out + "\""
            case .i(let v): return String(v)
            case .d(let v): return v.isFinite ? String(format: "%.6g", v) : "null"
            }
        }
    }

    func emit(_ event: [String: JSONValue]) {
        let keys = ["event"] + event.keys.filter { $0 != "event" }.sorted()
        let line = "{" + keys.map { "\"\($0)\": \(event[$0]!.text)" }.joined(separator: ", ") + "}\n"
        FileHandle.standardOutput.write(Data(line.utf8))
    }
}
