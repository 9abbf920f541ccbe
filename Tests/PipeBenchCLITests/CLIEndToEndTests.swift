import Foundation
import Testing
@testable import PipeHarness
@testable import PipeResults
#if canImport(Glibc)
import Glibc
#endif

/// The built `pipebench` executable: next to the test bundle (SwiftPM puts products and the
/// test runner in one directory), else under a scratch directory of the package.
func pipebenchBinary() -> String? {
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = (exe as NSString).deletingLastPathComponent
        // Bundles may sit inside a *.xctest directory.
        for _ in 0..<3 {
            candidates.append(dir + "/pipebench")
            dir = (dir as NSString).deletingLastPathComponent
        }
    }
    var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    for _ in 0..<3 { root = root.deletingLastPathComponent() }
    for scratch in [".build-cli", ".build"] {
        candidates.append(root.path + "/\(scratch)/debug/pipebench")
        candidates.append(root.path + "/\(scratch)/release/pipebench")
    }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

struct Outcome {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs pipebench in `directory` (a fresh temporary one by default).
func pipebench(_ args: [String], in directory: String? = nil) throws -> Outcome {
    guard let binary = pipebenchBinary() else {
        Issue.record("pipebench binary not found next to the tests; build it with `swift build`")
        return Outcome(status: -1, stdout: "", stderr: "")
    }
    // ChildProcess, not Foundation's Process and Pipe: its pipes are close-on-exec from the
    // start, so a child that another test spawns at the same moment cannot hold them open.
    let child = try ChildProcess.run([binary] + args, in: directory ?? makeTempDir())
    return Outcome(status: child.status, stdout: child.standardOutput, stderr: child.standardError)
}

func makeTempDir() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pipebench-test-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func write(_ text: String, _ path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
}

@Suite(.serialized) struct CLIEndToEndTests {
    /// Bad input: one line on stderr naming the problem, a non-zero status, nothing run.
    static let badInputs: [([String], Int32, String)] = [
        (["run", "--bogus"], 64, "Unknown option '--bogus'"),
        (["frobnicate"], 64, "frobnicate"),
        (["run", "--write-size", "4Q"], 64, "malformed size '4Q'"),
        (["sweep", "--write-size", "1M..4K"], 64, "needs 0 < start <= end"),
        (["run", "--mindirect", "512"], 64, "pipe_mindirect = 512 must be greater than PIPE_BUF (512)"),
        (["run", "--pipe-size", "5000"], 64, "PIPE_SIZE = 5000 must be a positive multiple of PAGE_SIZE"),
        (["run", "--writer-node", "4096"], 64, "no such NUMA node; this machine has node"),
        (["run", "--memory-node", "4096"], 64, "no such NUMA node"),
        (["run", "--reader-cpu", "100000"], 64, "no such CPU"),
        (["run", "--placement", "far-away"], 64, "--placement 'far-away' is unknown; use one of: same-core, cross-core, same-node, cross-node"),
        (["run", "--placement", "same-core", "--writer-cpu", "0"], 64, "leave out --writer-cpu"),
        (["run", "--placement", "same-node", "--memory-node", "0"], 64, "leave out --memory-node"),
        (["run", "--placement", "cross-core", "--writer-node", "0", "--reader-node", "1"], 64, "puts both sides on one node"),
        (["run", "--transport", "carrier-pigeon"], 64, "--transport 'carrier-pigeon' is unknown"),
        (["run", "--workload", "pingpong", "--transport", "memcpy"], 64, "memcpy has no pingpong"),
        (["run", "--write-size", "4K,8K"], 64, "use `pipebench sweep`"),
        (["run", "--hold", "glue"], 64, "--hold 'glue' is unknown"),
        (["run", "--wait", "nap"], 64, "use park, spin or spin:NS"),
        (["run", "--progress", "fancy"], 64, "fancy"),
        (["run", "--csv", "/nonexistent-dir/x.csv"], 73, "directory '/nonexistent-dir' does not exist"),
        (["run", "--json", "/proc/x.json"], 73, "cannot create files in '/proc'"),
        (["sweep", "--write-size", "4K..16K", "--shard", "3/2"], 64, "shards are numbered 1 to 2"),
        (["sweep", "--write-size", "4K..16K", "--shard", "x"], 64, "write it as I/N"),
        (["sweep"], 64, "sweep needs parameters"),
        (["sweep", "--config", "/nonexistent.toml"], 64, "cannot read config file"),
        (["compare", "only-one.csv"], 64, "compare needs two result files"),
        (["compare", "--run", "mindirect=8K"], 64, "--run and --vs go together"),
        (["compare", "--run", "mindirect=8K,16K", "--vs", "mindirect=8K"], 64, "describes 2 configurations"),
        (["compare", "a.csv", "b.csv", "--threshold", "five"], 64, "give a percentage"),
        (["compare", "a.csv", "b.csv", "--ignore", "colour"], 64, "--ignore colour: not a parameter column"),
        (["compare", "/nonexistent-a.csv", "/nonexistent-b.csv"], 65, "cannot read '/nonexistent-a.csv'"),
        (["export", "/nonexistent.csv"], 65, "cannot read"),
        (["explain", "/nonexistent.csv"], 65, "cannot read"),
        (["run", "--precision", "0"], 64, "give a percentage above 0 and below 100"),
        (["run", "--precision", "five"], 64, "give a percentage above 0 and below 100"),
        (["run", "--max-time", "1s"], 64, "--max-time goes with --precision"),
        (["run", "--max-repetitions", "9"], 64, "--max-repetitions goes with --precision"),
        (["run", "--min-time", "100"], 64, "give a time with its unit"),
        (["run", "--precision", "5%", "--precision-rounds", "some"], 64, "use all or usual"),
        (["run", "--precision", "5%", "--max-time", "soon"], 64, "--max-time 'soon': give a time with its unit"),
        (["sweep", "--write-size", "4K,8K", "--precision", "5%", "--max-repetitions", "2"], 64, "--max-repetitions 2 is below --repetitions 5"),
        (["explain"], 64, "Missing expected argument"),
        (["export", "a.csv", "--to", "targets"], 64, "--to targets needs --targets FILE"),
        (["export", "a.csv", "--targets", "t.json"], 64, "--targets FILE goes with --to targets"),
        (["export", "/nonexistent.csv", "--to", "targets", "--targets", "/nonexistent.json"], 65, "cannot read '/nonexistent.json'"),
        (["run", "--transport", "engine", "--copy", "fast"], 64, "use one of: cached, streaming"),
        (["run", "--workload", "pairs", "--pairs", "0"], 64, "--pairs 0: must be positive"),
        (["run", "--workload", "pairs", "--pairs", "3", "--pair-cpus", "0:0,0:0"], 64, "2 pairs of CPUs for --pairs 3"),
        (["run", "--workload", "pairs", "--pair-cpus", "0-1"], 64, "give WRITER:READER CPUs per pair"),
        (["run", "--workload", "pairs", "--pair-cpus", "0:100000"], 64, "no such CPU"),
        (["run", "--workload", "pairs", "--transport", "memcpy"], 64, "memcpy has no pairs"),
        (["run", "--workload", "fanin", "--mux", "nonsense"], 64, "--mux 'nonsense' is unknown; use one of: poll, kqueue"),
        (["run", "--workload", "fanin", "--writers", "0"], 64, "--writers 0: must be positive"),
        (["run", "--workload", "fanin", "--transport", "linux-pipe", "--mux", "kqueue"], 64, "Linux has no kqueue"),
        (["run", "--workload", "fanin", "--transport", "unix-socket"], 64, "fanin runs over --transport engine or linux-pipe"),
        (["run", "--transport", "linux-pipe", "--kernel-pipe-size", "5000"], 64, "--kernel-pipe-size 5000: give a power of two"),
        (["run", "--transport", "linux-pipe", "--kernel-pipe-size", "2G"], 64, "at most 1G"),
        (["run", "--transport", "engine", "--kernel-pipe-size", "1M"], 64, "applies to --transport linux-pipe or linux-vmsplice"),
        (["sweep", "--transport", "engine,spsc-ring", "--kernel-pipe-size", "64K,1M"], 64, "applies to --transport linux-pipe or linux-vmsplice"),
    ]

    @Test func badInputGetsOneLineAndNonZeroExit() throws {
        for (args, status, fragment) in Self.badInputs {
            let o = try pipebench(args)
            #expect(o.status == status, "\(args): status \(o.status), stderr \(o.stderr)")
            #expect(o.stderr.contains(fragment), "\(args): \(o.stderr)")
            #expect(o.stderr.hasPrefix("pipebench: error: "), "\(args): \(o.stderr)")
            #expect(o.stderr.split(separator: "\n").count == 1, "\(args): not one line: \(o.stderr)")
            #expect(o.stdout.isEmpty, "\(args): \(o.stdout)")
        }
    }

    @Test func kvaTierDrivesTheKVAPressureWorkload() throws {
        let o = try pipebench(["sweep", "--kva-tier", "0,50,75,90", "--list"])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("4 of 4 points"), "\(o.stdout)")
        #expect(o.stdout.contains("kva-pressure engine kva=75"), "\(o.stdout)")
        for (args, fragment) in [
            (["sweep", "--workload", "stream", "--kva-tier", "50"], "--kva-tier applies to --workload kva-pressure"),
            (["run", "--workload", "kva-pressure", "--transport", "linux-pipe"], "runs on --transport engine only"),
            (["sweep", "--kva-tier", "101"], "0 to 100"),
        ] {
            let e = try pipebench(args)
            #expect(e.status == 64, "\(args): \(e.stderr)")
            #expect(e.stderr.contains(fragment), "\(args): \(e.stderr)")
            #expect(e.stderr.split(separator: "\n").count == 1)
        }
    }

    @Test func configFileErrors() throws {
        let dir = makeTempDir()
        write("wrte-size = \"4K\"\n", dir + "/typo.toml")
        write("[engine]\nmindirect = \"512\"\n", dir + "/low.toml")
        write("{\"transport\": [\"engine\"], \"colour\": \"red\"}", dir + "/bad.json")
        for (file, fragment) in [("typo.toml", "typo.toml:1: unknown key 'wrte-size'"),
                                 ("low.toml", "PIPE_BUF"), ("bad.json", "unknown key 'colour'")] {
            let o = try pipebench(["sweep", "--config", file], in: dir)
            #expect(o.status == 64, "\(file): \(o.stderr)")
            #expect(o.stderr.contains(fragment), "\(file): \(o.stderr)")
            #expect(o.stderr.split(separator: "\n").count == 1)
        }
        // A good file lists its points without running them.
        write("transport = [\"engine\", \"linux-pipe\"]\n[workload]\nwrite-size = \"4K..16K\"\n[engine]\nmindirect = [\"4K\", \"8K\"]\n", dir + "/ok.toml")
        let o = try pipebench(["sweep", "--config", "ok.toml", "--list"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("9 of 9 points"), "\(o.stdout)")
        let shard = try pipebench(["sweep", "--config", "ok.toml", "--list", "--shard", "2/4"], in: dir)
        #expect(shard.stdout.contains("2 of 9 points (shard 2/4)"), "\(shard.stdout)")
    }

    @Test func schemaMismatchAndCompareExitCodes() throws {
        let dir = makeTempDir()
        let base = table([("engine", "engine", samples(2.0)), ("linux-pipe", "linux-pipe", samples(3.0))])
        write(base.csv(), dir + "/a.csv")
        write(table([("engine", "engine", samples(2.02)), ("linux-pipe", "linux-pipe", samples(2.98))], runID: "r2").csv(), dir + "/same.csv")
        write(table([("engine", "engine", samples(1.5)), ("linux-pipe", "linux-pipe", samples(3.0))], runID: "r2").csv(), dir + "/slower.csv")
        write(table([("engine", "engine", samples(2.6)), ("linux-pipe", "linux-pipe", samples(3.0))], runID: "r2").csv(), dir + "/faster.csv")
        write("name,value\nx,1\n", dir + "/other.csv")
        write(base.csv().replacingOccurrences(of: "\(ResultsSchema.csvVersion),", with: "pipebench-csv/9,"), dir + "/future.csv")

        #expect(try pipebench(["compare", "a.csv", "same.csv"], in: dir).status == 0)
        let slower = try pipebench(["compare", "a.csv", "slower.csv"], in: dir)
        #expect(slower.status == 2)
        #expect(slower.stdout.contains("REGRESSION"))
        #expect(try pipebench(["compare", "a.csv", "faster.csv"], in: dir).status == 4)
        #expect(try pipebench(["compare", "a.csv", "faster.csv", "--threshold", "40"], in: dir).status == 0)

        for (file, fragment) in [("other.csv", "is not a pipebench results CSV"), ("future.csv", "has schema 'pipebench-csv/9'")] {
            let o = try pipebench(["compare", "a.csv", file], in: dir)
            #expect(o.status == 65, "\(o.stderr)")
            #expect(o.stderr.contains(fragment), "\(o.stderr)")
            #expect(o.stderr.split(separator: "\n").count == 1)
        }
    }

    @Test func exportRoundTripAndConcatenation() throws {
        let dir = makeTempDir()
        let t = table([("engine", "engine", samples(2.0, 3))])
        write(t.csv(), dir + "/a.csv")
        write(table([("ring", "spsc-ring", samples(5.0, 3))], runID: "r2").csv(), dir + "/b.csv")
        #expect(try pipebench(["export", "a.csv", "-o", "a.json"], in: dir).status == 0)
        #expect(try pipebench(["export", "a.json", "-o", "back.csv"], in: dir).status == 0)
        #expect(FileManager.default.contents(atPath: dir + "/back.csv") == FileManager.default.contents(atPath: dir + "/a.csv"))
        let again = try pipebench(["export", "a.json", "-o", "back.csv"], in: dir)
        #expect(again.status == 73)
        #expect(again.stderr.contains("already exists"))
        #expect(try pipebench(["export", "a.csv", "b.csv", "-o", "all.csv"], in: dir).status == 0)
        #expect(try ResultsTable.read(path: dir + "/all.csv").rows.count == 6)
        let md = try pipebench(["export", "all.csv", "--to", "markdown"], in: dir)
        #expect(md.stdout.contains("| ring | stream | spsc-ring |"))
    }

    /// `--copy` is a sweep axis of the engine: each value is its own configuration, recorded in
    /// the `copy` column, and a verified transfer is byte-exact either way.
    @Test func copyStrategyIsAnEngineAxis() throws {
        let dir = makeTempDir()
        let o = try pipebench(["sweep", "--transport", "engine,linux-pipe", "--copy", "cached,streaming", "--write-size", "4K",
                               "--total", "1M", "--verify", "--repetitions", "1", "--warmup", "0", "--quiet", "--csv", "c.csv"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        let t = try ResultsTable.read(path: dir + "/c.csv")
        let engine = t.rows.indices.filter { t.value($0, "transport") == "engine" }
        #expect(Set(engine.map { t.value($0, "copy") }) == ["cached", "streaming"])
        #expect(engine.allSatisfy { t.value($0, "integrity_ok") == "true" })
        // Not an axis of the kernel's pipe: one linux-pipe configuration, its copy column empty.
        let pipe = t.rows.indices.filter { t.value($0, "transport") == "linux-pipe" }
        #expect(pipe.count == 1 && t.value(pipe[0], "copy") == "")
    }

    /// `env_git_dirty` ignores what pipebench itself writes under `results/`: a fresh CSV there
    /// does not make the next run look built from uncommitted changes; any other change does.
    @Test func resultsDoNotMakeTheCheckoutDirty() throws {
        let dir = makeTempDir()
        func git(_ args: [String]) throws -> Int32 {
            try ChildProcess.run(["git", "-c", "user.email=test@pipebench", "-c", "user.name=test"] + args,
                                 in: dir).status
        }
        // No git on this machine (it cannot be spawned, or fails): nothing to check.
        guard (try? git(["init", "-q"])) == 0 else { return }
        write("x\n", dir + "/tracked.txt")
        #expect(try git(["add", "tracked.txt"]) == 0)
        #expect(try git(["commit", "-q", "-m", "one"]) == 0)
        try FileManager.default.createDirectory(atPath: dir + "/results", withIntermediateDirectories: true)
        func dirtyAfterRun(_ name: String) throws -> String {
            let o = try pipebench(["run", "--transport", "spsc-ring", "--write-size", "4K", "--total", "64K",
                                   "--repetitions", "1", "--warmup", "0", "--quiet", "--csv", "results/\(name).csv"], in: dir)
            #expect(o.status == 0, "\(o.stderr)")
            return try ResultsTable.read(path: dir + "/results/\(name).csv").value(0, "env_git_dirty")
        }
        #expect(try dirtyAfterRun("a") == "false")
        #expect(try dirtyAfterRun("b") == "false", "results/a.csv is pipebench's own output")
        write("y\n", dir + "/untracked.txt")
        #expect(try dirtyAfterRun("c") == "true")
    }

    /// `export --to summary` prints a saved run's tables: ratios paired by round, and, when
    /// the placement moved, which rounds and the ratio over the usual placement alone.
    @Test func exportSummaryReprintsARun() throws {
        var rows: [[String]] = []
        for (round, ns) in [64.0, 63, 330, 62, 64, 320, 65].enumerated() {
            let slow = ns > 100
            for (label, transport, value) in [("engine", "engine", slow ? 0.4 : 0.8), ("linux-pipe", "linux-pipe", 0.2)] {
                var r = syntheticRow(label: label, transport: transport, repetition: round, throughput: value)
                ResultsTable.set(&r, "probe_ns", ResultsTable.formatNumber(ns))
                rows.append(r)
                // The same as a pairs workload: its table gets the column too.
                ResultsTable.set(&r, "label", label + " pairs")
                ResultsTable.set(&r, "workload", "pairs")
                ResultsTable.set(&r, "pairs", "2")
                rows.append(r)
            }
        }
        let dir = makeTempDir()
        write(ResultsTable(rows: rows).csv(), dir + "/run.csv")
        let o = try pipebench(["export", "run.csv", "--to", "summary"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("Stream throughput"))
        #expect(o.stdout.contains("rounds at ~64 ns"), "\(o.stdout)")
        let pairsHeader = o.stdout.split(separator: "\n").drop { !$0.hasPrefix("Pairs:") }.dropFirst().first
        #expect(pairsHeader?.contains("rounds at ~64 ns") == true, "\(o.stdout)")
        let enginePairs = try #require(o.stdout.split(separator: "\n").first { $0.contains("engine pairs") })
        #expect(enginePairs.components(separatedBy: "4.00x").count == 3, "\(enginePairs)")   // both ratio columns
        // All rounds: the median of 4,4,2,4,4,2,4; the usual placement's five: 4.
        let engine = try #require(o.stdout.split(separator: "\n").first { $0.contains("engine") && !$0.contains("linux") })
        #expect(engine.contains("4.00x"), "\(engine)")
        #expect(o.stdout.contains("2 of 7 rounds (repetition 2,5)"), "\(o.stdout)")
    }

    @Test func smallRunWritesTidyCSV() throws {
        let dir = makeTempDir()
        let o = try pipebench(["run", "--transport", "linux-pipe,spsc-ring", "--write-size", "4K", "--total", "256K",
                               "--repetitions", "2", "--warmup", "0", "--quiet"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.isEmpty && o.stderr.isEmpty)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/results")
        #expect(files.count == 1 && files[0].hasPrefix("run-") && files[0].hasSuffix(".csv"))
        let t = try ResultsTable.read(path: dir + "/results/" + files[0])
        #expect(t.rows.count == 4, "one row per repetition")
        #expect(Set(t.rows.indices.map { t.value($0, "transport") }) == ["linux-pipe", "spsc-ring"])
        #expect(t.rows.indices.allSatisfy { Double(t.value($0, "throughput_GBps"))! > 0 })
        #expect(t.value(0, "write_size_B") == "4096")
        #expect(t.value(0, "total_B") == "262144")
        #expect(t.value(0, "pipe_mindirect_B") == "", "engine parameters are empty for other transports")
        // Every row has the probes around it.
        #expect(t.rows.indices.allSatisfy { (Double(t.value($0, "probe_ns")) ?? 0) > 0 })

        // NDJSON progress: every stdout line is a JSON object, first start, last done.
        let j = try pipebench(["run", "--workload", "pingpong", "--transport", "linux-pipe", "--iterations", "200",
                               "--repetitions", "2", "--warmup", "0", "--progress", "json", "--csv", "p.csv"], in: dir)
        #expect(j.status == 0, "\(j.stderr)")
        let lines = j.stdout.split(separator: "\n")
        for l in lines { #expect((try? JSONSerialization.jsonObject(with: Data(l.utf8))) is [String: Any], "\(l)") }
        #expect(lines.first?.contains("\"event\": \"start\"") == true)
        #expect(lines.last?.contains("\"event\": \"done\"") == true)
        #expect(lines.filter { $0.contains("\"event\": \"step\"") }.count == 2)
        // The file exists now: no silent overwrite.
        let again = try pipebench(["run", "--transport", "linux-pipe", "--csv", "p.csv", "--quiet"], in: dir)
        #expect(again.status == 73)
        #expect(again.stderr.contains("add --force"))
    }

    /// Each row carries what the pipe and the scheduler did; the summary says why in one line
    /// per configuration and `explain` lists every count. 1 MiB in 64 KiB writes over the
    /// engine is 16 direct chunks (one per write: each is held whole); linux-pipe has no
    /// engine events but the same scheduling columns.
    @Test func resultsExplainThemselves() throws {
        let dir = makeTempDir()
        let o = try pipebench(["run", "--transport", "engine,linux-pipe", "--write-size", "64K", "--total", "1M",
                               "--repetitions", "2", "--warmup", "0", "--csv", "run.csv", "--progress", "none"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        let t = try ResultsTable.read(path: dir + "/run.csv")
        for i in t.rows.indices {
            let engine = t.value(i, "transport") == "engine"
            #expect(t.value(i, "ev_direct_chunk") == (engine ? "16" : ""), "\(t.value(i, "transport"))")
            #expect(t.value(i, "ev_direct_write") == (engine ? "16" : ""))
            #expect(Int(t.value(i, "writer_vcsw")) != nil && Int(t.value(i, "reader_sys_ns")) != nil)
        }
        let why = o.stdout.split(separator: "\n").drop { !$0.hasPrefix("Why, per configuration") }
        #expect(why.dropFirst().first?.hasPrefix("  stream engine: 16 chunks/MiB,") == true, "\(o.stdout)")
        #expect(why.dropFirst(2).first?.hasPrefix("  stream linux-pipe: ") == true, "\(o.stdout)")
        #expect(why.dropFirst(2).first?.contains("context switches/MiB") == true, "\(o.stdout)")

        let e = try pipebench(["explain", "run.csv", "--label", "stream engine"], in: dir)
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.hasPrefix("stream engine: 16 chunks/MiB"), "\(e.stdout)")
        #expect(!e.stdout.contains("stream linux-pipe"))
        let chunks = try #require(e.stdout.split(separator: "\n").first { $0.hasPrefix("  ev_direct_chunk ") })
        #expect(chunks.split(separator: " ").map(String.init) == ["ev_direct_chunk", "16", "16", "16", "16"], "\(chunks)")
        let all = try pipebench(["explain", "run.csv"], in: dir)
        #expect(all.stdout.contains("stream linux-pipe: ") && all.stdout.contains("  reader_ivcsw "))
        let missing = try pipebench(["explain", "run.csv", "--label", "carrier"], in: dir)
        #expect(missing.status == 64 && missing.stderr.contains("its labels: stream engine, stream linux-pipe"), "\(missing.stderr)")
        // A file from before these columns has nothing to explain, and says so.
        write(ResultsTable(rows: [syntheticRow(label: "old", transport: "engine", repetition: 0, throughput: 1)]).csv(), dir + "/old.csv")
        let old = try pipebench(["explain", "old.csv"], in: dir)
        #expect(old.status == 65 && old.stderr.contains("nothing to explain"), "\(old.stderr)")
    }

    /// A sweep that stops by its precision target: repetitions sized by time (`--min-time`),
    /// rounds added after `--repetitions` until every configuration's median interval is within
    /// ±20% or `--max-repetitions` stops it; the rows, the summary's line and the rule, checked
    /// against each other from the CSV.
    @Test func sweepStopsByItsPrecisionTarget() throws {
        let dir = makeTempDir()
        // The stopping rule from a config file's [run] table, the rest from flags.
        write("[run]\nprecision = \"20%\"\nmax-repetitions = 30\nmin-time = \"5ms\"\n", dir + "/stop.toml")
        let o = try pipebench(["sweep", "--config", "stop.toml", "--transport", "memcpy,spsc-ring", "--write-size", "16K,64K",
                               "--repetitions", "6", "--csv", "s.csv", "--progress", "none"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        let t = try ResultsTable.read(path: dir + "/s.csv")
        let groups = ResultsSummary.groups(t)
        #expect(groups.count == 4)
        let rounds = try #require(Int(t.value(0, "repetitions")))
        #expect((6...30).contains(rounds))
        let target = PrecisionTarget(fraction: 0.2)
        let samples = groups.map { g in g.rows.map { Double(t.value($0, "value"))! } }
        for (g, xs) in zip(groups, samples) {
            #expect(xs.count == rounds, "\(g.label)")
            let totals = g.rows.map { Int(t.value($0, "total_B"))! }
            #expect(totals == totals.sorted(), "a time-sized total only grows: \(totals)")
            #expect(totals[0] >= 16 << 20, "calibration starts at the byte default")
            #expect(g.rows.allSatisfy { t.value($0, "min_time_ns") == "5000000" && t.value($0, "precision_pct") == "20.0" })
        }
        let reached = samples.allSatisfy(target.isMet)
        let line = try #require(o.stdout.split(separator: "\n").first { $0.hasPrefix("Precision ±20% over all rounds: ") }, "\(o.stdout)")
        if reached {
            #expect(line == "Precision ±20% over all rounds: every configuration reached it in \(rounds) rounds.", "\(line)")
            // It stopped at the first round it could.
            if rounds > 6 { #expect(!samples.allSatisfy { target.isMet(Array($0.prefix(rounds - 1))) }) }
        } else {
            #expect(rounds == 30 && line.contains("did not reach it in 30 rounds (stopped by --max-repetitions 30): "), "\(line)")
        }
    }

    /// pairs and fanin run from the CLI, verified, with their own columns filled in.
    @Test func pairsAndFanInRunAndFillTheirColumns() throws {
        let dir = makeTempDir()
        let p = try pipebench(["run", "--workload", "pairs", "--pairs", "2", "--pair-cpus", "0:0", "--transport", "engine,linux-pipe",
                               "--write-size", "16K", "--total", "512K", "--verify", "--repetitions", "2", "--warmup", "0",
                               "--csv", "pairs.csv", "--progress", "none"], in: dir)
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stdout.contains("Pairs: K writer/reader pairs"), "\(p.stdout)")
        let pt = try ResultsTable.read(path: dir + "/pairs.csv")
        #expect(pt.rows.count == 4)
        for i in pt.rows.indices {
            #expect(pt.value(i, "workload") == "pairs" && pt.value(i, "pairs") == "2" && pt.value(i, "pair_cpus") == "0:0")
            #expect(pt.value(i, "total_B") == "524288" && pt.value(i, "bytes_B") == "1048576")
            #expect(pt.value(i, "integrity_ok") == "true")
            #expect(pt.value(i, "writer_cpus_seen") == "0;0;0;0" && pt.value(i, "reader_cpus_seen") == "0;0;0;0")
            #expect(pt.value(i, "streams_GBps").split(separator: ";").count == 2)
            #expect(Double(pt.value(i, "stream_min_GBps"))! <= Double(pt.value(i, "stream_max_GBps"))!)
            #expect(pt.value(i, "writers").isEmpty && pt.value(i, "mux").isEmpty)
        }
        let f = try pipebench(["sweep", "--workload", "fanin", "--writers", "3", "--transport", "engine,linux-pipe", "--mux", "poll,kqueue",
                               "--write-size", "4K", "--total", "256K", "--verify", "--repetitions", "2", "--warmup", "0",
                               "--csv", "fanin.csv", "--quiet"], in: dir)
        #expect(f.status == 0, "\(f.stderr)")
        let ft = try ResultsTable.read(path: dir + "/fanin.csv")
        // linux-pipe has no kqueue: the sweep drops that point rather than fail... or refuses it.
        let sides = Set(ft.rows.indices.map { "\(ft.value($0, "transport"))/\(ft.value($0, "mux"))" })
        #expect(sides == ["engine/poll", "engine/kqueue", "linux-pipe/poll"], "\(sides)")
        for i in ft.rows.indices {
            #expect(ft.value(i, "writers") == "3" && ft.value(i, "bytes_B") == "\(3 * 262144)")
            #expect(ft.value(i, "integrity_ok") == "true")
            #expect(Int(ft.value(i, "mux_calls"))! > 0 && Int(ft.value(i, "read_calls"))! >= 3 * 64)
            #expect(ft.value(i, "pairs").isEmpty)
        }
    }

    /// contend and jobserver from the command line: the rows hold their parameters, the
    /// conserved counts and both ends' percentiles; a read that cannot hold a message is
    /// refused before anything runs.
    @Test func contendAndJobserverRunAndFillTheirColumns() throws {
        let dir = makeTempDir()
        let c = try pipebench(["run", "--workload", "contend", "--writers", "3", "--readers", "2", "--transport", "engine,linux-pipe,unix-socket",
                               "--write-size", "256", "--total", "64K", "--thread-cpus", "0", "--verify", "--repetitions", "2", "--warmup", "0",
                               "--csv", "contend.csv", "--progress", "none"], in: dir)
        #expect(c.status == 0, "\(c.stderr)")
        #expect(c.stdout.contains("Contend: W writers and R readers on one pipe"), "\(c.stdout)")
        let ct = try ResultsTable.read(path: dir + "/contend.csv")
        #expect(ct.rows.count == 6)
        for i in ct.rows.indices {
            #expect(ct.value(i, "workload") == "contend" && ct.value(i, "writers") == "3" && ct.value(i, "readers") == "2")
            #expect(ct.value(i, "bytes_B") == "\(3 * 65536)" && ct.value(i, "records") == "\(3 * 256)")
            #expect(ct.value(i, "integrity_ok") == "true" && ct.value(i, "record_check") == "whole")
            #expect(ct.value(i, "thread_cpus") == "0" && ct.value(i, "writer_cpus_seen") == "0;0;0;0;0;0")
            #expect(ct.value(i, "socket") == (ct.value(i, "transport") == "unix-socket" ? "seqpacket" : ""))
            #expect(Int(ct.value(i, "enqueue_p50_ns"))! <= Int(ct.value(i, "enqueue_p99_ns"))!)
            #expect(!ct.value(i, "dequeue_max_ns").isEmpty && ct.value(i, "token_wait_p50_ns").isEmpty)
        }
        let atomic = Dictionary(ct.rows.indices.map { (ct.value($0, "transport"), ct.value($0, "atomic_limit_B")) }, uniquingKeysWith: { a, _ in a })
        #expect(atomic["engine"] == "512" && atomic["linux-pipe"] == "4096" && atomic["unix-socket"] == "")
        let j = try pipebench(["run", "--workload", "jobserver", "--workers", "4", "--tokens", "2", "--work", "1us", "--takes", "2000",
                               "--transport", "engine,linux-pipe", "--verify", "--repetitions", "2", "--warmup", "0",
                               "--csv", "jobserver.csv", "--progress", "none"], in: dir)
        #expect(j.status == 0, "\(j.stderr)")
        let jt = try ResultsTable.read(path: dir + "/jobserver.csv")
        #expect(jt.rows.count == 4)
        for i in jt.rows.indices {
            #expect(jt.value(i, "workers") == "4" && jt.value(i, "tokens") == "2" && jt.value(i, "work_ns") == "1000" && jt.value(i, "takes") == "2000")
            #expect(jt.value(i, "integrity_ok") == "true" && Double(jt.value(i, "handoffs_per_s"))! > 0)
            #expect(Int(jt.value(i, "worker_takes_min"))! <= Int(jt.value(i, "worker_takes_max"))!)
            #expect(Double(jt.value(i, "work_measured_ns"))! >= 1000)
        }
        let bad = try pipebench(["run", "--workload", "contend", "--transport", "unix-socket", "--write-size", "1K", "--read-size", "512"], in: dir)
        #expect(bad.status == 64, "\(bad.stderr)")
        #expect(bad.stderr.contains("SOCK_SEQPACKET"))
        let wrong = try pipebench(["run", "--workload", "jobserver", "--transport", "unix-socket"], in: dir)
        #expect(wrong.status == 64 && wrong.stderr.contains("jobserver runs over"), "\(wrong.stderr)")
    }

    /// --placement is an axis: each preset's rows name it and hold the CPUs and nodes it chose;
    /// with every buffer bound to a node, no page is off it. A preset this machine cannot give
    /// (cross-node on one node) is refused naming what exists.
    @Test func placementPresetsAreAnAxisAndRecordWhatTheyChose() throws {
        let dir = makeTempDir()
        let topology = Topology.current()
        let presets = topology.numaAvailable ? "same-core,cross-core,same-node" : "same-core,cross-core"
        let o = try pipebench(["sweep", "--workload", "pingpong", "--transport", "engine,linux-pipe", "--placement", presets,
                               "--iterations", "200", "--verify", "--repetitions", "2", "--warmup", "0",
                               "--csv", "placed.csv", "--progress", "none"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        #expect(!o.stdout.contains("Warning"), "\(o.stdout)")
        let t = try ResultsTable.read(path: dir + "/placed.csv")
        #expect(t.rows.count == (topology.numaAvailable ? 12 : 8))
        for i in t.rows.indices {
            let preset = try #require(PlacementPreset(rawValue: t.value(i, "placement")), "row \(i)")
            let asked = try Placement.preset(preset, topology: topology)
            #expect(t.value(i, "label").contains("place=\(preset.rawValue)"))
            #expect(t.value(i, "writer_cpu") == asked.writerCPU.map(String.init) ?? "")
            #expect(t.value(i, "reader_cpu") == asked.readerCPU.map(String.init) ?? "")
            #expect(t.value(i, "writer_node") == asked.writerNode.map(String.init) ?? "")
            #expect(t.value(i, "integrity_ok") == "true")
            if let cpu = asked.writerCPU { #expect(t.value(i, "writer_cpus_seen") == "\(cpu);\(cpu)") }
            if let node = asked.writerMemoryNode {
                #expect(t.value(i, "memory_pages_misplaced") == "0", "row \(i)")
                #expect(t.value(i, "writer_memory_node_seen") == String(node))
            } else {
                #expect(t.value(i, "memory_pages_misplaced").isEmpty)
            }
        }
        if topology.nodes.filter({ !topology.usableCPUs(onNode: $0.id).isEmpty }).count < 2 {
            let cross = try pipebench(["run", "--placement", "cross-node", "--quiet"], in: dir)
            #expect(cross.status == 64)
            #expect(cross.stderr.contains("--placement cross-node") && cross.stderr.contains("needs two NUMA nodes"), "\(cross.stderr)")
        }
    }

    /// --kernel-pipe-size reaches F_SETPIPE_SZ: asked and in-force sizes in the CSV, empty for
    /// the engine; above pipe-max-size it is refused before anything runs (unless root).
    @Test func kernelPipeSizeIsSetAndRecorded() throws {
        let dir = makeTempDir()
        let o = try pipebench(["run", "--transport", "linux-pipe,linux-vmsplice,engine", "--kernel-pipe-size", "128K",
                               "--write-size", "16K", "--total", "512K", "--repetitions", "1", "--warmup", "0",
                               "--csv", "k.csv", "--quiet"], in: dir)
        #expect(o.status == 0, "\(o.stderr)")
        let t = try ResultsTable.read(path: dir + "/k.csv")
        #expect(t.rows.count == 3)
        for i in t.rows.indices {
            let engine = t.value(i, "transport") == "engine"
            #expect(t.value(i, "kernel_pipe_size_asked_B") == (engine ? "" : "131072"))
            #expect(t.value(i, "kernel_pipe_size_B") == (engine ? "" : "131072"))
        }
        // Without the flag the asked column is empty and the kernel default is in force.
        let d = try pipebench(["run", "--transport", "linux-pipe", "--write-size", "16K", "--total", "256K",
                               "--repetitions", "1", "--warmup", "0", "--csv", "d.csv", "--quiet"], in: dir)
        #expect(d.status == 0, "\(d.stderr)")
        let dt = try ResultsTable.read(path: dir + "/d.csv")
        #expect(dt.value(0, "kernel_pipe_size_asked_B") == "" && dt.value(0, "kernel_pipe_size_B") == "65536")

        let env = EnvironmentInfo.capture()
        if geteuid() != 0, let max = env.pipeMaxSize, max < 1 << 30 {
            let over = try pipebench(["run", "--transport", "linux-pipe", "--kernel-pipe-size", SizeSpec.format(max * 2)], in: dir)
            #expect(over.status == 64, "\(over.stderr)")
            #expect(over.stderr.contains("above /proc/sys/fs/pipe-max-size"), "\(over.stderr)")
            #expect(over.stderr.split(separator: "\n").count == 1)
        }
    }

    /// Results files of schema versions 1 (before the pairs and fanin columns) and 2 (before
    /// the probes around each repetition) are still read, as CSV and as JSON, and compare with today's.
    @Test func olderVersionsAreStillRead() throws {
        var t = table([("engine", "engine", samples(2.0, 3))])
        for r in t.rows.indices { ResultsTable.set(&t.rows[r], "pairs", "1") }   // a version 2 column
        let dir = makeTempDir()
        for version in 1..<ResultsSchema.version {
            let columns = ResultsSchema.columnNames(ofVersion: version)
            var old = t
            for r in old.rows.indices {   // what that version could hold: newer columns empty
                for c in ResultsSchema.columnNames where !columns.contains(c) { ResultsTable.set(&old.rows[r], c, nil) }
            }
            var lines = [columns.joined(separator: ",")]
            for r in t.rows.indices {
                lines.append(columns.enumerated().map { j, c in
                    j == 0 ? "pipebench-csv/\(version)" : ResultsTable.csvField(t.value(r, c))
                }.joined(separator: ","))
            }
            let csv = lines.joined(separator: "\r\n") + "\r\n"
            #expect(try ResultsTable.parseCSV(csv, name: "v\(version).csv") == old, "version \(version)")
            let rowObjects: [[String: Any]] = t.rows.indices.map { r in
                Dictionary(uniqueKeysWithValues: columns.enumerated().map { j, c -> (String, Any) in
                    let v = j == 0 ? "pipebench-csv/\(version)" : t.value(r, c)
                    return (c, v.isEmpty ? NSNull() : v)
                })
            }
            let file: [String: Any] = ["schema": "pipebench-json/\(version)", "columns": columns, "rows": rowObjects]
            let json = String(decoding: try JSONSerialization.data(withJSONObject: file), as: UTF8.self)
            #expect(try ResultsTable.parseJSON(json, name: "v\(version).json") == old, "version \(version) JSON")
            write(csv, dir + "/v\(version).csv")
            write(old.csv(), dir + "/now\(version).csv")
            let compared = try pipebench(["compare", "v\(version).csv", "now\(version).csv"], in: dir)
            #expect(compared.status == 0, "version \(version): \(compared.stderr)")
        }
        // A header of version 2 under rows that say version 3 is a damaged file.
        let mixed = ResultsSchema.columnNames(ofVersion: 2).joined(separator: ",") + "\r\n"
            + ResultsSchema.columnNames(ofVersion: 2).enumerated().map { j, _ in j == 0 ? ResultsSchema.csvVersion : "" }.joined(separator: ",") + "\r\n"
        #expect(throws: ResultsError.self) { try ResultsTable.parseCSV(mixed, name: "mixed.csv") }
    }

    @Test func helpHasExamplesForEveryCommand() throws {
        for sub in ["run", "sweep", "compare", "export", "topology", "sysctl", "columns"] {
            let o = try pipebench([sub, "--help"])
            #expect(o.status == 0)
            #expect(o.stdout.contains("Examples:"), "\(sub)")
            #expect(o.stdout.contains("pipebench \(sub)"), "\(sub)")
        }
        let completion = try pipebench(["--generate-completion-script", "bash"])
        #expect(completion.status == 0)
        #expect(completion.stdout.contains("_pipebench"))
    }
}
