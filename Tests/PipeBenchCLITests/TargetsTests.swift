import Foundation
import Testing
@testable import PipeHarness
@testable import PipeResults

/// `export --to targets`: targets files, their check against saved runs, and the shipped ones.
@Suite struct TargetsTests {
    static let results = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("results")

    static func reference(_ name: String) throws -> ResultsTable {
        try ResultsTable.read(path: results.appendingPathComponent(name).path)
    }

    static func engine(_ size: String, mindirect: String = "8192", spin: String = "50000") -> [String: String] {
        ["workload": "stream", "transport": "engine", "write_size_B": size, "pipe_mindirect_B": mindirect, "wait_spin_ns": spin]
    }

    static func other(_ transport: String, _ size: String) -> [String: String] {
        ["workload": "stream", "transport": transport, "write_size_B": size]
    }

    /// The ratios of one reference run, paired round by round, as an independent script
    /// (Python's csv and statistics.median over the same rows) computed them: the median
    /// and the 2nd and 10th of the 11 sorted per-round ratios.
    @Test func pairedRatiosOfAReferenceRun() throws {
        let targets = ResultsTargets(targets: [
            .init(name: "1M direct/pipe", metric: "throughput_GBps", atLeast: 3,
                  measured: Self.engine("1048576"), against: Self.other("linux-pipe", "1048576")),
            .init(name: "1M direct/vmsplice", metric: "throughput_GBps", atLeast: 1,
                  measured: Self.engine("1048576"), against: Self.other("linux-vmsplice", "1048576")),
            .init(name: "4K/pipe", metric: "throughput_GBps", atLeast: 1.5,
                  measured: Self.engine("4096"), against: Self.other("linux-pipe", "4096")),
            .init(name: "1M parked CPU/B", metric: "cpu_ns_per_B", atMost: 0.5,
                  measured: Self.engine("1048576", spin: "0"), against: Self.other("linux-pipe", "1048576")),
        ])
        let outcomes = targets.check(try Self.reference("sweep-20261126-233522.csv"))
        let expected: [(Double, Double, Double, Bool)] = [
            (6.014, 4.635, 7.204, true), (1.459, 1.204, 1.651, true),
            (1.128, 0.914, 1.933, false), (1.551, 1.326, 2.181, false),
        ]
        #expect(outcomes.count == expected.count)
        for (o, e) in zip(outcomes, expected) {
            guard case .measured(let r, let met) = o.status else {
                Issue.record("\(o.target.name): \(o.status)")
                continue
            }
            #expect(abs(r.estimate - e.0) < 0.0005, "\(o.target.name): \(r.estimate)")
            #expect(abs(r.lower - e.1) < 0.0005 && abs(r.upper - e.2) < 0.0005, "\(o.target.name): \(r)")
            #expect(r.pairs == 11)
            #expect(met == e.3, "\(o.target.name)")
        }
    }

    @Test func absentAndAmbiguousSelectionsAreSaidSo() throws {
        let targets = ResultsTargets(targets: [
            .init(name: "pingpong in a stream run", metric: "p50_ns", atMost: 1,
                  measured: ["workload": "pingpong"], against: ["workload": "pingpong"]),
            .init(name: "every engine stream", metric: "throughput_GBps", atLeast: 1,
                  measured: ["transport": "engine", "write_size_B": "65536"], against: Self.other("linux-pipe", "65536")),
        ])
        let outcomes = targets.check(try Self.reference("sweep-20261126-233522.csv"))
        #expect(outcomes[0].status == .absent)
        guard case .unusable(let why) = outcomes[1].status else {
            Issue.record("\(outcomes[1].status)")
            return
        }
        #expect(why.hasPrefix("measured selects 4 configurations"))
        let report = targets.report([(name: "run.csv", table: try Self.reference("sweep-20261126-233522.csv"))])
        #expect(report.contains("no verdict: measured selects 4 configurations"))
        #expect(report.contains("Not measured in these files: pingpong in a stream run"))
    }

    @Test func malformedTargetsFilesAreRefusedWithTheirReason() {
        let cases: [(String, String)] = [
            (#"{"schema": "pipebench-targets/9", "targets": []}"#, #"schema "pipebench-targets/9""#),
            (#"{"schema": "pipebench-targets/1"}"#, #"missing "targets""#),
            (#"{"schema": "pipebench-targets/1", "targets": [{"name": "x", "metric": "p50_ns", "at_least": 1, "at_most": 2, "measured": {"transport": "engine"}, "against": {"transport": "memcpy"}}]}"#,
             "exactly one of at_least and at_most"),
            (#"{"schema": "pipebench-targets/1", "targets": [{"name": "x", "metric": "label", "at_least": 1, "measured": {"transport": "engine"}, "against": {"transport": "memcpy"}}]}"#,
             #"metric "label" is not a numeric column"#),
            (#"{"schema": "pipebench-targets/1", "targets": [{"name": "x", "metric": "p50_ns", "at_least": 1, "measured": {"transprot": "engine"}, "against": {"transport": "memcpy"}}]}"#,
             #"no column "transprot""#),
            (#"{"schema": "pipebench-targets/1", "targets": [{"name": "x", "metric": "p50_ns", "at_least": 1, "measured": {}, "against": {"transport": "memcpy"}}]}"#,
             "must each name at least one column"),
            ("not json", "not a targets file"),
        ]
        for (text, message) in cases {
            do {
                _ = try ResultsTargets.parse(Data(text.utf8), name: "t.json")
                Issue.record("accepted: \(text)")
            } catch let e as ResultsError {
                #expect(e.kind == .input)
                #expect(e.message.hasPrefix("t.json"), "\(e.message)")
                #expect(e.message.contains(message), "\(e.message)")
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    /// The performance report's own targets file reads, and each of its targets is measured
    /// in one of the reference runs beside it.
    @Test func theReportsTargetsAreMeasuredInItsResults() throws {
        let targets = try ResultsTargets.read(path: Self.results.appendingPathComponent("targets.json").path)
        #expect(!targets.targets.isEmpty)
        let files = try ["sweep-20261126-233522.csv", "sweep-20261126-215704.csv"].map { (name: $0, table: try Self.reference($0)) }
        for (i, target) in targets.targets.enumerated() {
            let measured = files.contains { file in
                if case .measured = ResultsTargets(targets: [target]).check(file.table)[0].status { return true }
                return false
            }
            #expect(measured, "target \(i + 1) (\(target.name)) is measured in no reference run")
        }
    }

    /// Every reference result under results/ reads with this pipebench, whatever its version.
    @Test func everyReferenceResultReads() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.results.path).filter { $0.hasSuffix(".csv") }
        #expect(names.count >= 20)
        for name in names.sorted() {
            let table = try Self.reference(name)
            #expect(!table.rows.isEmpty, "\(name)")
        }
    }
}
