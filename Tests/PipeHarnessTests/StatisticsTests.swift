import Testing
@testable import PipeHarness

@Suite struct StatisticsTests {
    @Test func descriptiveStatisticsMatchKnownValues() {
        let xs: [Double] = [2, 4, 4, 4, 5, 5, 7, 9]
        #expect(Statistics.mean(xs) == 5)
        // Sample standard deviation (n - 1): NumPy std(ddof=1) gives 2.138089935299395.
        #expect(abs(Statistics.standardDeviation(xs) - 2.138089935299395) < 1e-12)
        #expect(Statistics.median([3, 1, 2]) == 2)
        #expect(Statistics.median([4, 1, 3, 2]) == 2.5)
        // Type-7 quantiles, as numpy.quantile([3,1,4,1,5,9,2,6], ...).
        let ys: [Double] = [3, 1, 4, 1, 5, 9, 2, 6]
        let expected: [(Double, Double)] = [(0, 1), (0.1, 1), (0.25, 1.75), (0.5, 3.5), (0.9, 6.9), (1, 9)]
        for (p, q) in expected {
            #expect(abs(Statistics.quantile(ys, p) - q) < 1e-12, "quantile \(p)")
        }
        #expect(Statistics.median([]).isNaN)
        #expect(Statistics.standardDeviation([1]).isNaN)
    }

    @Test func binomialCDFMatchesExactValues() {
        // P(B ≤ 1), B ~ Bin(10, 1/2) = 11/1024; P(B ≤ 5), Bin(20, 1/2) = 21700/2^20.
        #expect(abs(Statistics.binomialHalfCDF(1, 10) - 11.0 / 1024) < 1e-14)
        #expect(abs(Statistics.binomialHalfCDF(5, 20) - 21700.0 / 1_048_576) < 1e-14)
        #expect(Statistics.binomialHalfCDF(-1, 10) == 0)
        #expect(Statistics.binomialHalfCDF(10, 10) == 1)
        // Large n does not overflow: P(B ≤ n/2) is a little over one half.
        let big = Statistics.binomialHalfCDF(5000, 10000)
        #expect(big > 0.5 && big < 0.51)
    }

    @Test(arguments: [
        // n, lower rank, upper rank, exact coverage (from scipy.stats.binom)
        (6, 1, 6, 0.96875), (9, 2, 8, 0.9609375), (10, 2, 9, 0.978515625),
        (20, 6, 15, 0.9586105346679688), (30, 10, 21, 0.9572260547429323),
        (100, 40, 61, 0.9647997997822951),
    ])
    func medianIntervalUsesTheRightOrderStatistics(n: Int, lower: Int, upper: Int, coverage: Double) throws {
        // Values 10, 20, ..., shuffled: the ranks must be chosen on the sorted sample.
        var rng = SplitMix64(seed: UInt64(n))
        var xs = (1...n).map { Double($0 * 10) }
        xs.shuffle(using: &rng)
        let ci = try #require(Statistics.medianConfidenceInterval(xs))
        #expect(ci.lowerRank == lower)
        #expect(ci.upperRank == upper)
        #expect(ci.lower == Double(lower * 10))
        #expect(ci.upper == Double(upper * 10))
        #expect(abs(ci.coverage - coverage) < 1e-9)
        #expect(ci.reachesConfidence)
    }

    @Test func medianIntervalOnTinySamplesSaysItFallsShort() throws {
        let ci = try #require(Statistics.medianConfidenceInterval([5, 1, 3, 2, 4]))
        #expect(ci.lower == 1 && ci.upper == 5)
        #expect(abs(ci.coverage - 0.9375) < 1e-12)   // 1 - 2/32
        #expect(!ci.reachesConfidence)
        #expect(Statistics.medianConfidenceInterval([]) == nil)
    }

    /// Coverage check by simulation: samples of 30 from an exponential distribution (median
    /// ln 2), seeded. The interval's exact coverage is 95.72 %, so over 2000 samples the hit
    /// rate must be near that (binomial standard error ≈ 0.45 %).
    @Test func medianIntervalCoversTheTrueMedian() throws {
        var rng = SplitMix64(seed: 42)
        let trueMedian = log(2.0)
        let trials = 2000
        var hits = 0
        for _ in 0..<trials {
            let xs = (0..<30).map { _ in -log(1 - Double(rng.next() >> 11) / Double(1 << 53)) }
            let ci = try #require(Statistics.medianConfidenceInterval(xs))
            if ci.lower <= trueMedian && trueMedian <= ci.upper { hits += 1 }
        }
        let rate = Double(hits) / Double(trials)
        #expect(rate > 0.935 && rate < 0.98, "coverage \(rate)")
    }

    @Test(arguments: [
        // a, b, U of a, two-sided p from scipy.stats.mannwhitneyu(method="asymptotic")
        ([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10], 0.0, 0.012185780355344813),
        ([1.1, 2.2, 2.2, 3.3, 4.4, 5.5, 5.5, 6.6], [2.2, 3.3, 5.5, 7.7, 8.8, 8.8, 9.9, 10.1, 11.0], 12.5, 0.02595642538378026),
        ([19.0, 22, 16, 29, 24], [20.0, 11, 17, 12], 17.0, 0.11134688653314041),
        ([3.0, 3, 3, 3], [3.0, 3, 3], 6.0, 1.0),
    ])
    func mannWhitneyMatchesReference(a: [Double], b: [Double], u: Double, p: Double) throws {
        let r = try #require(Statistics.mannWhitneyU(a, b))
        #expect(r.u1 == u)
        #expect(r.u1 + r.u2 == Double(a.count * b.count))
        #expect(abs(r.pValue - p) < 1e-12, "p = \(r.pValue), expected \(p)")
        // Symmetric: swapping the samples swaps U and the sign of z, keeps p.
        let s = try #require(Statistics.mannWhitneyU(b, a))
        #expect(s.u1 == r.u2)
        #expect(abs(s.pValue - r.pValue) < 1e-12)
        #expect(s.z == -r.z)
    }

    @Test func mannWhitneyRejectsEmptySamples() {
        #expect(Statistics.mannWhitneyU([], [1]) == nil)
        #expect(Statistics.mannWhitneyU([1], []) == nil)
    }

    @Test func bootstrapRatioIsReproducibleAndCoversTheTruth() throws {
        var rng = SplitMix64(seed: 7)
        let a = (0..<25).map { _ in 100 + Double(rng.index(below: 1000)) / 100 }   // 100 ... 110
        let b = (0..<25).map { _ in 200 + Double(rng.index(below: 2000)) / 100 }   // 200 ... 220
        let r1 = try #require(Statistics.bootstrapRatioOfMedians(baseline: a, candidate: b, seed: 99))
        let r2 = try #require(Statistics.bootstrapRatioOfMedians(baseline: a, candidate: b, seed: 99))
        #expect(r1 == r2)
        #expect(r1.estimate == Statistics.median(b) / Statistics.median(a))
        #expect(r1.lower <= r1.estimate && r1.estimate <= r1.upper)
        #expect(r1.lower < 2 && 2 < r1.upper, "[\(r1.lower), \(r1.upper)]")
        #expect(r1.upper - r1.lower < 0.2)
        // Same data on both sides: the interval straddles 1.
        let same = try #require(Statistics.bootstrapRatioOfMedians(baseline: a, candidate: a))
        #expect(same.estimate == 1 && same.lower <= 1 && 1 <= same.upper)
        // A different seed gives a (slightly) different interval.
        let r3 = try #require(Statistics.bootstrapRatioOfMedians(baseline: a, candidate: b, seed: 100))
        #expect(r3 != r1)
    }

    /// A machine that switches between a fast and a 3x slower phase, and a candidate always
    /// twice the baseline within a round: the per-round ratios see 2 every time, while the ratio
    /// of medians mixes phases and its bootstrap interval spans far beyond 2.
    @Test func pairedRatioFollowsRoundsThroughPhases() throws {
        var rng = SplitMix64(seed: 11)
        let phase: [Double] = [1, 1, 3, 3, 1, 3, 3, 1, 1, 3, 1]
        let a = phase.map { 100 / $0 * (1 + Double(rng.index(below: 100)) / 10_000) }
        let b = a.enumerated().map { i, x in 2 * x * (1 + Double(i % 3) / 1_000) }
        let paired = try #require(Statistics.pairedRatio(baseline: a, candidate: b))
        #expect(paired.pairs == 11)
        #expect(paired.reachesConfidence)
        #expect(paired.lower >= 2 && paired.upper <= 2.005 && paired.lower <= paired.estimate && paired.estimate <= paired.upper)
        let unpaired = try #require(Statistics.bootstrapRatioOfMedians(baseline: a, candidate: b))
        #expect(unpaired.upper - unpaired.lower > 1, "[\(unpaired.lower), \(unpaired.upper)]")
        // Five rounds cannot reach 95%: the interval is min-max, and says so.
        let five = try #require(Statistics.pairedRatio(baseline: Array(a.prefix(5)), candidate: Array(b.prefix(5))))
        #expect(!five.reachesConfidence && five.coverage < 0.95)
        // Unpaired shapes are refused rather than guessed at.
        #expect(Statistics.pairedRatio(baseline: a, candidate: Array(b.dropLast())) == nil)
        #expect(Statistics.pairedRatio(baseline: [], candidate: []) == nil)
        #expect(Statistics.pairedRatio(baseline: [1, 0], candidate: [1, 1]) == nil)
    }

    @Test func splitMixMatchesReferenceOutput() {
        // First outputs of SplitMix64 seeded with 1234567 (Vigna's reference C code).
        var rng = SplitMix64(seed: 1234567)
        #expect(rng.next() == 6457827717110365317)
        #expect(rng.next() == 3203168211198807973)
    }

    @Test func sampleSummaryOmitsUndefinedSpread() throws {
        let one = try #require(SampleSummary([3]))
        #expect(one.standardDeviation == nil && one.median == 3 && one.min == 3 && one.max == 3)
        #expect(SampleSummary([]) == nil)
    }
}

@testable import PipeResults
#if canImport(Glibc)
import Glibc
#endif
