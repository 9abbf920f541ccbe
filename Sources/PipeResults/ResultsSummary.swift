/// Per-configuration summaries of a results table, and the comparison of two tables.
public enum ResultsSummary {
    public struct Metric: Sendable {
        public let column: String
        public let title: String
        public let higherIsBetter: Bool
        public let digits: Int
    }

    /// The metrics summarised and compared, in display order.
    public static let metrics: [Metric] = [
        Metric(column: "throughput_GBps", title: "throughput GB/s", higherIsBetter: true, digits: 3),
        Metric(column: "cpu_ns_per_B", title: "CPU ns/B", higherIsBetter: false, digits: 3),
        Metric(column: "p50_ns", title: "p50 ns", higherIsBetter: false, digits: 0),
        Metric(column: "p99_ns", title: "p99 ns", higherIsBetter: false, digits: 0),
        Metric(column: "enqueue_p99_ns", title: "enqueue p99 ns", higherIsBetter: false, digits: 0),
        Metric(column: "handoffs_per_s", title: "hand-offs/s", higherIsBetter: true, digits: 0),
        Metric(column: "token_wait_p99_ns", title: "token wait p99 ns", higherIsBetter: false, digits: 0),
        Metric(column: "fairness_max_min", title: "takes max/min", higherIsBetter: false, digits: 2),
    ]

    /// The repetitions of one configuration.
    public struct Group: Sendable {
        public let label: String
        public let key: String
        public var rows: [Int]
        let table: ResultsTable

        /// The run the group's first repetition came from.
        public var runID: String { table.value(rows[0], "run_id") }

        public func samples(_ column: String) -> [Double] {
            rows.compactMap { Double(table.value($0, column)) }
        }

        /// `column` by `repetition` (the round of an interleaved run); nil if a round repeats.
        public func samplesByRepetition(_ column: String) -> [Int: Double]? {
            var byRound: [Int: Double] = [:]
            for row in rows {
                guard let round = Int(table.value(row, "repetition")),
                      let value = Double(table.value(row, column)) else { continue }
                if byRound.updateValue(value, forKey: round) != nil { return nil }
            }
            return byRound
        }

        public func median(_ column: String) -> Double? {
            let s = samples(column)
            return s.isEmpty ? nil : Statistics.median(s)
        }

        /// "2.41 [2.30, 2.52]" (the interval from order statistics, when it reaches 95%).
        public func summaryText(_ column: String, digits: Int) -> String? {
            let s = samples(column)
            guard let m = s.isEmpty ? nil : Statistics.median(s) else { return nil }
            var text = formatFixed(m, digits)
            if let ci = Statistics.medianConfidenceInterval(s), ci.reachesConfidence {
                text += " [\(formatFixed(ci.lower, digits)), \(formatFixed(ci.upper, digits))]"
            }
            return text
        }
    }

    /// Rounds of a run during which the placement was not the run's usual one: on a VM the host
    /// moves the vCPUs, and a cache line's round trip between the two CPUs changes with it
    /// (on the machine of `results/`: ~64 ns most of the time, ~320 ns for seconds to minutes,
    /// now and then ~40 ns), and every cross-core number with it.
    public struct PlacementDrift: Sendable, Equatable {
        /// The run's usual probe (the median of its repetitions' `probe_ns`), ns; for a table
        /// that merges runs, the first run's.
        public let usualNs: Double
        /// The lowest and highest probe of any repetition, ns.
        public let lowestNs: Double
        public let highestNs: Double
        /// Rounds (0-based `repetition`) with a repetition whose probe was off the usual one by
        /// more than `placementDriftFactor`, either way.
        public let offRounds: [Int]
        public let rounds: Int
        /// The off rounds as "run_id#repetition", for tables that merge runs.
        let offKeys: Set<String>

        public init(usualNs: Double, lowestNs: Double, highestNs: Double, offRounds: [Int], rounds: Int,
                    offKeys: Set<String> = []) {
            self.usualNs = usualNs
            self.lowestNs = lowestNs
            self.highestNs = highestNs
            self.offRounds = offRounds
            self.rounds = rounds
            self.offKeys = offKeys
        }

        /// Whether round `round` of run `runID` ran (in part) off the usual placement.
        public func isOff(runID: String, round: Int) -> Bool { offKeys.contains(runID + "#\(round)") }

        /// Equal when what they report is (`offKeys` is the bookkeeping behind `isOff`).
        public static func == (a: PlacementDrift, b: PlacementDrift) -> Bool {
            (a.usualNs, a.lowestNs, a.highestNs, a.offRounds, a.rounds) == (b.usualNs, b.lowestNs, b.highestNs, b.offRounds, b.rounds)
        }
    }

    /// A repetition whose probe read more than this factor above or below its run's usual
    /// probe ran on another placement. The short probes of one placement spread by about ±10%
    /// here; the placements seen differ by 1.3x (~50 against ~64 ns, where the engine's 4 KiB
    /// stream doubles) to 5x (~320 ns).
    public static let placementDriftFactor = 1.25

    /// The rounds of one run with a repetition whose probe was off the run's usual probe (the
    /// median of all of them) by more than `placementDriftFactor`, either way. The one rule
    /// for the summary's note and for a precision target over the usual rounds.
    public static func offPlacementRounds(_ probes: [(round: Int, ns: Double)]) -> Set<Int> {
        guard !probes.isEmpty else { return [] }
        let usual = Statistics.median(probes.map(\.ns))
        return Set(probes.filter { $0.ns > usual * placementDriftFactor || $0.ns < usual / placementDriftFactor }.map(\.round))
    }

    /// The rounds of each run in `t` that ran, in part, off the run's usual placement (see
    /// `PlacementDrift`), or nil when none did, or the table has no per-repetition probes
    /// (files before schema version 3).
    public static func placementDrift(_ t: ResultsTable) -> PlacementDrift? {
        var probesByRun: [String: [(round: Int, ns: Double)]] = [:]
        var runs: [String] = []
        for row in t.rows.indices {
            guard let round = Int(t.value(row, "repetition")), let ns = Double(t.value(row, "probe_ns")) else { continue }
            let run = t.value(row, "run_id")
            if probesByRun[run] == nil { runs.append(run) }
            probesByRun[run, default: []].append((round, ns))
        }
        guard let first = runs.first else { return nil }
        var usualOfFirst = 0.0, offKeys: Set<String> = [], offRounds: Set<Int> = [], rounds: Set<Int> = []
        var lowest = Double.infinity, highest = 0.0
        for run in runs {
            let probes = probesByRun[run]!
            if run == first { usualOfFirst = Statistics.median(probes.map(\.ns)) }
            for p in probes {
                rounds.insert(p.round)
                lowest = min(lowest, p.ns)
                highest = max(highest, p.ns)
            }
            for round in offPlacementRounds(probes) {
                offKeys.insert(run + "#\(round)")
                offRounds.insert(round)
            }
        }
        guard !offKeys.isEmpty else { return nil }
        return PlacementDrift(usualNs: usualOfFirst, lowestNs: lowest, highestNs: highest,
                              offRounds: offRounds.sorted(), rounds: rounds.count, offKeys: offKeys)
    }

    /// What a run did not do as asked, one line per configuration: pages of buffers bound to
    /// a node found elsewhere after a repetition (`memory_pages_misplaced`). pipebench prints
    /// them with the summary, and on standard error where no summary is printed.
    public static func placementWarnings(_ t: ResultsTable) -> [String] {
        var byLabel: [(label: String, reps: [Int], pages: Int, seen: String)] = []
        for i in t.rows.indices {
            guard let n = Int(t.value(i, "memory_pages_misplaced")), n > 0 else { continue }
            let label = t.value(i, "label")
            let seen = [("writer", "writer_memory_node_seen"), ("reader", "reader_memory_node_seen"), ("arena", "arena_memory_node_seen")]
                .compactMap { side, column in t.value(i, column).isEmpty ? nil : "\(side) \(t.value(i, column))" }
                .joined(separator: ", ")
            let rep = Int(t.value(i, "repetition")) ?? i
            if let k = byLabel.firstIndex(where: { $0.label == label }) {
                byLabel[k].reps.append(rep)
                byLabel[k].pages = max(byLabel[k].pages, n)
            } else {
                byLabel.append((label, [rep], n, seen))
            }
        }
        return byLabel.map { w in
            let asked = t.rows.indices.first { t.value($0, "label") == w.label }.map { i in
                let m = t.value(i, "memory_node")
                return m.isEmpty ? "the nodes of --placement \(t.value(i, "placement"))" : "node \(m)"
            } ?? "the node asked"
            return "\(w.label): pages found off \(asked) in repetition \(w.reps.map(String.init).joined(separator: ",")) "
                + "(up to \(w.pages) pages; most pages on: \(w.seen); column memory_pages_misplaced). "
                + "Something moved them after placement (migratepages, autonuma, memory pressure) or the node ran out of memory."
        }
    }

    /// `candidate` over `baseline` in `column`, paired round by round (`Statistics.pairedRatio`),
    /// leaving out the rounds `drift` names as off the usual placement when given; nil when the
    /// two groups do not have the same rounds (or none are left).
    public static func pairedRatio(_ candidate: Group, over baseline: Group, _ column: String,
                                   onlyUsualPlacementOf drift: PlacementDrift? = nil) -> PairedRatio? {
        guard let b = baseline.samplesByRepetition(column), let c = candidate.samplesByRepetition(column),
              !b.isEmpty, Set(b.keys) == Set(c.keys) else { return nil }
        let rounds = b.keys.sorted().filter { drift?.isOff(runID: candidate.runID, round: $0) != true }
        return Statistics.pairedRatio(baseline: rounds.map { b[$0]! }, candidate: rounds.map { c[$0]! })
    }

    /// The parameter values of a row, as one string (what `compare` matches on). A total sized
    /// by time (`min_time_ns` set) is what calibration chose, not a parameter asked for: it is
    /// left out, and the minimum time is matched instead.
    public static func parameterKey(_ t: ResultsTable, _ row: Int, ignoring: Set<String> = []) -> String {
        let ignored = t.value(row, "min_time_ns").isEmpty ? ignoring : ignoring.union(["total_B"])
        return (ResultsSchema.parameterColumns.filter { !ignored.contains($0) }.map { t.value(row, $0) }
                + [t.value(row, "min_time_ns")]).joined(separator: "\u{1F}")
    }

    /// Configurations in order of first appearance: rows of one run with one label.
    public static func groups(_ t: ResultsTable) -> [Group] {
        var out: [Group] = []
        var index: [String: Int] = [:]
        for r in t.rows.indices {
            let id = t.value(r, "run_id") + "\u{1F}" + t.value(r, "label")
            if let i = index[id] { out[i].rows.append(r) } else {
                index[id] = out.count
                out.append(Group(label: t.value(r, "label"), key: parameterKey(t, r), rows: [r], table: t))
            }
        }
        return out
    }

    /// Rows grouped by parameters only (several runs of one configuration pool together).
    public static func groupsByParameters(_ t: ResultsTable, ignoring: Set<String>) -> [Group] {
        var out: [Group] = []
        var index: [String: Int] = [:]
        for r in t.rows.indices {
            let key = parameterKey(t, r, ignoring: ignoring)
            if let i = index[key] { out[i].rows.append(r) } else {
                index[key] = out.count
                out.append(Group(label: t.value(r, "label"), key: key, rows: [r], table: t))
            }
        }
        return out
    }
}

func formatFixed(_ x: Double, _ digits: Int) -> String {
    if digits == 0 { return String(Int(x.rounded())) }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let v = (x * p).rounded() / p
    var s = String(v)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    } else if !s.contains("e") {
        s += "." + String(repeating: "0", count: digits)
    }
    return s
}
