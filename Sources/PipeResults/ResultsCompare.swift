/// Baseline A against candidate B, configuration by configuration, metric by metric.
public struct ResultsComparison: Sendable {
    public enum Verdict: String, Sendable { case unchanged = "no change", regression, improvement, tooFew = "too few samples" }

    public struct Entry: Sendable {
        public let label: String
        public let metric: ResultsSummary.Metric
        public let countA: Int
        public let countB: Int
        public let medianA: Double
        public let medianB: Double
        /// median(B) / median(A) with a bootstrap interval.
        public let ratio: RatioInterval?
        public let mannWhitney: MannWhitneyResult?
        public let verdict: Verdict
    }

    public var entries: [Entry] = []
    public var onlyInA: [String] = []
    public var onlyInB: [String] = []
    public var threshold: Double

    /// Minimum repetitions on each side for a verdict.
    public static let minimumSamples = 3

    /// 2 when any metric regressed, 4 when some improved and none regressed, 0 otherwise
    /// (package-benchmark's convention).
    public var exitCode: Int32 {
        if entries.contains(where: { $0.verdict == .regression }) { return 2 }
        if entries.contains(where: { $0.verdict == .improvement }) { return 4 }
        return 0
    }

    /// Matches configurations by their parameter columns (minus `ignoring`) and, for each
    /// metric both have, flags a change only when the bootstrap interval of the ratio of
    /// medians excludes 1 and the ratio's estimate is beyond `threshold` (0.05 = 5%).
    public init(baseline a: ResultsTable, candidate b: ResultsTable, threshold: Double = 0.05,
                ignoring: Set<String> = [], resamples: Int = 2000, confidence: Double = 0.95) throws {
        for col in ignoring where !ResultsSchema.parameterColumns.contains(col) {
            throw ResultsError(.input, "--ignore \(col): not a parameter column; use one of: \(ResultsSchema.parameterColumns.joined(separator: ", "))")
        }
        self.threshold = threshold
        let ga = ResultsSummary.groupsByParameters(a, ignoring: ignoring)
        let gb = ResultsSummary.groupsByParameters(b, ignoring: ignoring)
        let byKey = Dictionary(uniqueKeysWithValues: gb.map { ($0.key, $0) })
        let keysA = Set(ga.map(\.key))
        onlyInB = gb.filter { !keysA.contains($0.key) }.map(\.label)
        for g in ga {
            guard let h = byKey[g.key] else { onlyInA.append(g.label); continue }
            for m in ResultsSummary.metrics {
                let sa = g.samples(m.column), sb = h.samples(m.column)
                guard !sa.isEmpty, !sb.isEmpty else { continue }
                let ratio = Statistics.bootstrapRatioOfMedians(baseline: sa, candidate: sb, resamples: resamples, confidence: confidence)
                let mw = Statistics.mannWhitneyU(sb, sa)
                var verdict = Verdict.unchanged
                if sa.count < Self.minimumSamples || sb.count < Self.minimumSamples {
                    verdict = .tooFew
                } else if let r = ratio, (r.lower > 1 || r.upper < 1), abs(r.estimate - 1) > threshold {
                    verdict = (r.estimate > 1) == m.higherIsBetter ? .improvement : .regression
                }
                entries.append(Entry(
                    label: g.label == h.label ? g.label : "\(g.label) / \(h.label)", metric: m,
                    countA: sa.count, countB: sb.count,
                    medianA: Statistics.median(sa), medianB: Statistics.median(sb),
                    ratio: ratio, mannWhitney: mw, verdict: verdict))
            }
        }
        if entries.isEmpty && !ga.isEmpty && !gb.isEmpty && onlyInA.count == ga.count {
            throw ResultsError(.input, "no configuration of the first file has the same parameters as one of the second; compare like with like, or name differing parameter columns with --ignore")
        }
    }
}
