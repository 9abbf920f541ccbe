import Foundation
import Testing
@testable import PipeHarness
@testable import PipeResults

/// A synthetic row: a stream configuration with one throughput sample.
func syntheticRow(label: String, transport: String = "engine", writeSize: Int = 65536, runID: String = "r1",
                  repetition: Int = 0, throughput: Double, cpuPerByte: Double? = nil) -> [String] {
    var r = ResultsTable.emptyRow()
    ResultsTable.set(&r, "run_id", runID)
    ResultsTable.set(&r, "label", label)
    ResultsTable.set(&r, "repetition", String(repetition))
    ResultsTable.set(&r, "workload", "stream")
    ResultsTable.set(&r, "transport", transport)
    ResultsTable.set(&r, "write_size_B", String(writeSize))
    ResultsTable.set(&r, "throughput_GBps", ResultsTable.formatNumber(throughput))
    ResultsTable.set(&r, "cpu_ns_per_B", cpuPerByte.map(ResultsTable.formatNumber))
    ResultsTable.set(&r, "env_cpu_model", "Test CPU, \"quoted\"\nsecond line")
    return r
}

/// `n` samples spread evenly around `center` (±2%).
func samples(_ center: Double, _ n: Int = 8) -> [Double] {
    (0..<n).map { center * (0.98 + 0.04 * Double($0) / Double(n - 1)) }
}

func table(_ configs: [(String, String, [Double])], runID: String = "r1") -> ResultsTable {
    var rows: [[String]] = []
    for (label, transport, xs) in configs {
        for (k, x) in xs.enumerated() { rows.append(syntheticRow(label: label, transport: transport, runID: runID, repetition: k, throughput: x)) }
    }
    return ResultsTable(rows: rows)
}

@Suite struct CSVTests {
    @Test func rfc4180Quoting() {
        #expect(ResultsTable.csvField("plain") == "plain")
        #expect(ResultsTable.csvField("a,b") == "\"a,b\"")
        #expect(ResultsTable.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(ResultsTable.csvField("two\nlines") == "\"two\nlines\"")
        #expect(ResultsTable.csvField("cr\rhere") == "\"cr\rhere\"")
        #expect(ResultsTable.csvField("") == "")
    }

    @Test func recordsParseQuotedFieldsAndLineEnds() throws {
        let text = "a,b,c\r\n\"x,1\",\"he said \"\"no\"\"\",\"multi\r\nline\"\r\n1,,3\n"
        let records = try ResultsTable.parseCSVRecords(text, name: "t.csv")
        #expect(records == [["a", "b", "c"], ["x,1", "he said \"no\"", "multi\r\nline"], ["1", "", "3"]])
        // No final line end.
        #expect(try ResultsTable.parseCSVRecords("a,b\n1,2", name: "t") == [["a", "b"], ["1", "2"]])
        #expect(throws: ResultsError.self) { try ResultsTable.parseCSVRecords("a,\"b\n", name: "t") }
        #expect(throws: ResultsError.self) { try ResultsTable.parseCSVRecords("a,\"b\"c\n", name: "t") }
    }

    @Test func roundTrip() throws {
        let t = table([("engine, direct", "engine", [1.5, 2.25, 1e-7]), ("linux-pipe", "linux-pipe", [3.0])])
        let csv = t.csv()
        #expect(csv.hasPrefix("schema,run_id,label,"))
        #expect(csv.contains("\r\n\(ResultsSchema.csvVersion),r1,\"engine, direct\",0,"))
        let back = try ResultsTable.parseCSV(csv, name: "t.csv")
        #expect(back == t)
        #expect(back.value(0, "env_cpu_model") == "Test CPU, \"quoted\"\nsecond line")
        // JSON is lossless too.
        let viaJSON = try ResultsTable.parseJSON(t.json(), name: "t.json")
        #expect(viaJSON == t)
        #expect(viaJSON.csv() == csv)
        // Markdown summarises.
        let md = t.markdown()
        #expect(md.contains("| engine, direct | stream | engine |"))
        #expect(md.contains("Machine: Test CPU"))
    }

    @Test func schemaMismatchIsRefused() throws {
        let good = table([("a", "engine", [1, 2])]).csv()
        let otherVersion = good.replacingOccurrences(of: "\(ResultsSchema.csvVersion),", with: "pipebench-csv/0,")
        for (text, fragment) in [
            ("name,value\r\nx,1\r\n", "is not a pipebench results CSV"),
            (otherVersion, "has schema 'pipebench-csv/0'"),
            (good.replacingOccurrences(of: "schema,run_id,label,", with: "schema,run,label,"), "columns differ"),
            ("", "is empty"),
            (good + "\(ResultsSchema.csvVersion),short\r\n", "fields"),
        ] {
            do {
                _ = try ResultsTable.parseCSV(text, name: "x.csv")
                Issue.record("no error for \(fragment)")
            } catch let e as ResultsError {
                #expect(e.kind == .input)
                #expect(e.message.contains(fragment), "\(e.message)")
                #expect(!e.message.contains("\n"))
            }
        }
        #expect(throws: ResultsError.self) { try ResultsTable.parseJSON("{\"schema\": \"other/1\", \"columns\": [], \"rows\": []}", name: "x.json") }
    }

    @Test func columnOrderIsDocumentedAndStable() {
        let names = ResultsSchema.columnNames
        #expect(names.first == "schema")
        #expect(Set(names).count == names.count)
        #expect(ResultsSchema.parameterColumns.first == "workload")
        let doc = ResultsSchema.markdownDocumentation()
        for n in names { #expect(doc.contains("`\(n)`")) }
        // Every parameter axis has a parameter column (the one it fills) ...
        #expect(ResultsSchema.column("kernel_pipe_size_asked_B")?.group == .parameter)
        #expect(ResultsSchema.column("kernel_pipe_size_B")?.group == .metric)
        // ... and each version's columns are exactly those later versions did not add.
        let added = [ResultsSchema.addedInVersion2, ResultsSchema.addedInVersion3, ResultsSchema.addedInVersion4, ResultsSchema.addedInVersion5, ResultsSchema.addedInVersion6]
        #expect(ResultsSchema.version1ColumnNames.count + added.reduce(0) { $0 + $1.count } == names.count)
        for v in 2...ResultsSchema.version {
            #expect(ResultsSchema.columnNames(ofVersion: v).count + added[(v - 1)...].reduce(0) { $0 + $1.count } == names.count, "version \(v)")
        }
        #expect(ResultsSchema.columnNames(ofVersion: ResultsSchema.version) == names)
        #expect(added.allSatisfy { $0.allSatisfy { ResultsSchema.column($0) != nil } })
    }

    @Test func atomicWriteNeverOverwritesWithoutForce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pb-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.csv"
        try ResultsTable.checkWritable(path: path, force: false, flag: "--csv")
        try ResultsTable.writeAtomically("one", to: path, force: false)
        #expect(throws: ResultsError.self) { try ResultsTable.writeAtomically("two", to: path, force: false) }
        #expect(throws: ResultsError.self) { try ResultsTable.checkWritable(path: path, force: false, flag: "--csv") }
        #expect(String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self) == "one")
        try ResultsTable.writeAtomically("three", to: path, force: true)
        #expect(String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self) == "three")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.csv"], "no temporary files left")
        #expect(throws: ResultsError.self) { try ResultsTable.checkWritable(path: dir + "/missing/x.csv", force: false, flag: "--csv") }
        let p1 = ResultsTable.timestampedPath(directory: dir, prefix: "run", ext: "csv")
        try ResultsTable.writeAtomically("", to: p1, force: false)
        let p2 = ResultsTable.timestampedPath(directory: dir, prefix: "run", ext: "csv", date: Date())
        #expect(p1 != p2 || !FileManager.default.fileExists(atPath: p2))
    }
}

@Suite struct CompareTests {
    @Test func noChange() throws {
        let a = table([("engine", "engine", samples(2.0)), ("linux-pipe", "linux-pipe", samples(3.0))])
        let b = table([("engine", "engine", samples(2.01)), ("linux-pipe", "linux-pipe", samples(2.99))], runID: "r2")
        let c = try ResultsComparison(baseline: a, candidate: b)
        #expect(c.entries.count == 2)
        #expect(c.entries.allSatisfy { $0.verdict == .unchanged })
        #expect(c.exitCode == 0)
    }

    @Test func regression() throws {
        let a = table([("engine", "engine", samples(2.0)), ("linux-pipe", "linux-pipe", samples(3.0))])
        let b = table([("engine", "engine", samples(1.5)), ("linux-pipe", "linux-pipe", samples(3.6))], runID: "r2")
        let c = try ResultsComparison(baseline: a, candidate: b)
        #expect(c.entries.first { $0.label == "engine" }?.verdict == .regression)
        #expect(c.entries.first { $0.label == "linux-pipe" }?.verdict == .improvement)
        #expect(c.exitCode == 2, "a regression wins over an improvement")
        let e = c.entries.first { $0.label == "engine" }!
        #expect(e.ratio!.upper < 1)
        #expect(e.mannWhitney!.pValue < 0.01)
    }

    @Test func improvementOnly() throws {
        let a = table([("engine", "engine", samples(2.0))])
        let b = table([("engine", "engine", samples(2.5))], runID: "r2")
        #expect(try ResultsComparison(baseline: a, candidate: b).exitCode == 4)
    }

    @Test func significantButBelowThresholdIsNotFlagged() throws {
        // 3% faster with tight samples: the interval excludes 1, but 3% < 5%.
        let a = table([("engine", "engine", (0..<10).map { 2.0 + 0.001 * Double($0) })])
        let b = table([("engine", "engine", (0..<10).map { 2.06 + 0.001 * Double($0) })], runID: "r2")
        let c = try ResultsComparison(baseline: a, candidate: b)
        #expect(c.entries[0].ratio!.lower > 1)
        #expect(c.exitCode == 0)
        #expect(try ResultsComparison(baseline: a, candidate: b, threshold: 0.02).exitCode == 4)
    }

    @Test func largeButUncertainIsNotFlagged() throws {
        // Medians 10% apart but samples overlapping widely: the interval contains 1.
        let a = table([("engine", "engine", [1.0, 3.0, 1.2, 2.9, 2.0, 1.1])])
        let b = table([("engine", "engine", [1.1, 3.1, 1.3, 2.8, 2.2, 1.0])], runID: "r2")
        let c = try ResultsComparison(baseline: a, candidate: b)
        #expect(c.entries[0].verdict == .unchanged)
        #expect(c.exitCode == 0)
    }

    @Test func matchingUsesParametersNotLabels() throws {
        let a = table([("old name", "engine", samples(2.0)), ("gone", "unix-socket", samples(1.0))])
        let b = table([("new name", "engine", samples(2.0)), ("new", "spsc-ring", samples(5.0))], runID: "r2")
        let c = try ResultsComparison(baseline: a, candidate: b)
        #expect(c.entries.count == 1)
        #expect(c.onlyInA == ["gone"])
        #expect(c.onlyInB == ["new"])
        // Nothing in common is an error, unless the differing column is ignored.
        let x = table([("x", "engine", samples(2.0))])
        let y = table([("y", "linux-pipe", samples(2.0))], runID: "r2")
        #expect(throws: ResultsError.self) { try ResultsComparison(baseline: x, candidate: y) }
        #expect(try ResultsComparison(baseline: x, candidate: y, ignoring: ["transport"]).entries.count == 1)
        #expect(throws: ResultsError.self) { try ResultsComparison(baseline: x, candidate: y, ignoring: ["bogus"]) }
    }

    @Test func tooFewSamplesGiveNoVerdict() throws {
        let a = table([("engine", "engine", [2.0, 2.0])])
        let b = table([("engine", "engine", [4.0, 4.0])], runID: "r2")
        let c = try ResultsComparison(baseline: a, candidate: b)
        #expect(c.entries[0].verdict == .tooFew)
        #expect(c.exitCode == 0)
    }
}

@Suite struct PlacementDriftTests {
    /// Two configurations, one probe per round on both of its rows.
    func run(probes: [Double?]) -> ResultsTable {
        var rows: [[String]] = []
        for (round, ns) in probes.enumerated() {
            for label in ["a", "b"] {
                var r = syntheticRow(label: label, repetition: round, throughput: 1)
                ResultsTable.set(&r, "probe_ns", ns.map(ResultsTable.formatNumber))
                rows.append(r)
            }
        }
        return ResultsTable(rows: rows)
    }

    @Test func roundsOffTheUsualPlacementAreNamed() {
        let drift = ResultsSummary.placementDrift(run(probes: [62, 64, 320, 63, 315, 38, 64]))
        #expect(drift == ResultsSummary.PlacementDrift(usualNs: 64, lowestNs: 38, highestNs: 320, offRounds: [2, 4, 5], rounds: 7))
    }

    /// One repetition off the usual placement marks its round: the pair it belongs to mixed them.
    @Test func oneOffRepetitionMarksItsRound() {
        var t = run(probes: [62, 64, 63])
        let row = t.rows.indices.first { t.value($0, "repetition") == "1" && t.value($0, "label") == "b" }!
        ResultsTable.set(&t.rows[row], "probe_ns", "300")
        #expect(ResultsSummary.placementDrift(t)?.offRounds == [1])
        #expect(ResultsSummary.placementDrift(t)?.isOff(runID: "r1", round: 1) == true)
        #expect(ResultsSummary.placementDrift(t)?.isOff(runID: "r1", round: 0) == false)
    }

    /// When most of a run was on the slow placement, that is its usual one, and the fast
    /// rounds are the ones set apart.
    @Test func theUsualPlacementIsTheRunsMedian() {
        let drift = ResultsSummary.placementDrift(run(probes: [320, 330, 62, 325, 318]))
        #expect(drift?.usualNs == 320 && drift?.offRounds == [2])
    }

    @Test func steadyOrUnprobedRunsHaveNone() {
        #expect(ResultsSummary.placementDrift(run(probes: [62, 64, 76, 56])) == nil)   // within 1.25x of 63
        #expect(ResultsSummary.placementDrift(run(probes: [nil, nil])) == nil)         // schema 1 and 2 files
        #expect(ResultsSummary.placementDrift(ResultsTable(rows: [])) == nil)
    }

    /// The ratio over the usual placement's rounds leaves the others out, pairing the rest.
    @Test func ratiosOverTheUsualPlacementWhenAsked() throws {
        let probes: [Double] = [62, 320, 330, 63, 315, 61, 64]
        var rows: [[String]] = []
        for (round, ns) in probes.enumerated() {
            let slow = ns > 100
            // Engine 4x or 5x linux in the usual rounds, 2x in slow ones (the cross-core cost
            // hits it harder).
            for (label, value) in [("engine", slow ? 0.4 : (round < 4 ? 0.8 : 1.0)), ("linux", 0.2)] {
                var r = syntheticRow(label: label, repetition: round, throughput: value)
                ResultsTable.set(&r, "probe_ns", ResultsTable.formatNumber(ns))
                rows.append(r)
            }
        }
        let t = ResultsTable(rows: rows)
        let groups = ResultsSummary.groups(t)
        let engine = try #require(groups.first { $0.label == "engine" })
        let linux = try #require(groups.first { $0.label == "linux" })
        let drift = try #require(ResultsSummary.placementDrift(t))
        let all = try #require(ResultsSummary.pairedRatio(engine, over: linux, "throughput_GBps"))
        let usual = try #require(ResultsSummary.pairedRatio(engine, over: linux, "throughput_GBps", onlyUsualPlacementOf: drift))
        #expect(all.pairs == 7 && abs(all.estimate - 4) < 1e-9)       // median of 4,2,2,4,2,5,5
        #expect(drift.offRounds == [1, 2, 4])
        #expect(usual.pairs == 4 && abs(usual.estimate - 4.5) < 1e-9)   // median of 4,4,5,5
        let slowUsual = ResultsSummary.PlacementDrift(usualNs: 320, lowestNs: 61, highestNs: 330, offRounds: [0, 3, 5, 6], rounds: 7,
                                                      offKeys: ["r1#0", "r1#3", "r1#5", "r1#6"])
        #expect(ResultsSummary.pairedRatio(engine, over: linux, "throughput_GBps", onlyUsualPlacementOf: slowUsual)?.estimate == 2)
    }

    /// Rounds of different runs (shards merged into one table) are told apart by run id.
    @Test func roundsOfDifferentRunsAreSeparate() {
        var t = run(probes: [62, 63])
        for (round, ns) in [64.0, 300, 63, 65].enumerated() {
            var r = syntheticRow(label: "a", runID: "r2", repetition: round, throughput: 1)
            ResultsTable.set(&r, "probe_ns", ResultsTable.formatNumber(ns))
            t.rows.append(r)
        }
        let drift = ResultsSummary.placementDrift(t)
        #expect(drift?.offRounds == [1] && drift?.rounds == 4)
        #expect(drift?.isOff(runID: "r2", round: 1) == true && drift?.isOff(runID: "r1", round: 1) == false)
    }
}
