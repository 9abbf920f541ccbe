#if canImport(Glibc)
import Glibc
#endif

/// Descriptive and inferential statistics for benchmark samples.
///
/// Benchmark timings are skewed and heavy-tailed (a preempted repetition is slow, never fast),
/// so the harness summarises with the median and distribution-free intervals: order-statistic
/// confidence intervals for a median, a bootstrap interval for a ratio of medians, and the
/// Mann-Whitney U test for "do these two samples differ". None of them assumes normality.
public enum Statistics {
    // MARK: descriptive

    /// Arithmetic mean; NaN for an empty sample.
    public static func mean(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return .nan }
        // Kahan-free is fine here: samples are few and of similar magnitude.
        return xs.reduce(0, +) / Double(xs.count)
    }

    /// Sample standard deviation (n - 1 in the denominator); NaN below two values.
    public static func standardDeviation(_ xs: [Double]) -> Double {
        guard xs.count >= 2 else { return .nan }
        let m = mean(xs)
        let ss = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (ss / Double(xs.count - 1)).squareRoot()
    }

    /// The p-quantile (0 ≤ p ≤ 1) by linear interpolation between order statistics: Hyndman and
    /// Fan's type 7, the default of R and NumPy. NaN for an empty sample.
    public static func quantile(_ xs: [Double], _ p: Double) -> Double {
        quantile(sorted: xs.sorted(), p)
    }

    /// `quantile` of an already ascending sample (saves the sort when taking several).
    public static func quantile(sorted s: [Double], _ p: Double) -> Double {
        guard !s.isEmpty else { return .nan }
        precondition(p >= 0 && p <= 1, "quantile \(p) outside [0, 1]")
        let h = Double(s.count - 1) * p
        let lo = Int(h.rounded(.down))
        let hi = Swift.min(lo + 1, s.count - 1)
        return s[lo] + (h - Double(lo)) * (s[hi] - s[lo])
    }

    /// The median (mean of the two middle values for an even count); NaN for an empty sample.
    public static func median(_ xs: [Double]) -> Double { quantile(xs, 0.5) }

    // MARK: confidence interval for a median

    /// P(B ≤ k) for B ~ Binomial(n, 1/2), summed in log space so that n in the thousands
    /// neither overflows nor underflows.
    static func binomialHalfCDF(_ k: Int, _ n: Int) -> Double {
        if k < 0 { return 0 }
        if k >= n { return 1 }
        let logHalfToN = Double(n) * log(0.5)
        let lgn1 = logGamma(Double(n) + 1)
        var sum = 0.0
        for i in 0...k {
            sum += exp(lgn1 - logGamma(Double(i) + 1) - logGamma(Double(n - i) + 1) + logHalfToN)
        }
        return Swift.min(sum, 1)
    }

    /// Distribution-free confidence interval for the population median from order statistics.
    ///
    /// The number of sample values below the true median is Binomial(n, 1/2) for any
    /// continuous distribution, so [x(l), x(n+1-l)] (1-based order statistics) covers the
    /// median with probability 1 - 2·P(B ≤ l-1). We take the largest l for which that is at
    /// least `confidence`; the achieved coverage is reported because it jumps in steps (for
    /// n = 10, 95 % asked gives [x(2), x(9)] at 97.85 %). Below six values no interval reaches
    /// 95 %: the result is then [min, max] with its (lower) coverage and `reachesConfidence`
    /// false. Nil for an empty sample.
    public static func medianConfidenceInterval(_ xs: [Double], confidence: Double = 0.95) -> MedianInterval? {
        precondition(confidence > 0 && confidence < 1, "confidence \(confidence) outside (0, 1)")
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        let n = s.count
        let alphaHalf = (1 - confidence) / 2
        // Largest l with P(B ≤ l-1) ≤ alpha/2; l = 1 (the extremes) when even that is too much.
        var l = 1
        while l < (n + 1) / 2 && binomialHalfCDF(l, n) <= alphaHalf { l += 1 }
        let coverage = 1 - 2 * binomialHalfCDF(l - 1, n)
        return MedianInterval(
            lower: s[l - 1], upper: s[n - l], lowerRank: l, upperRank: n + 1 - l,
            requestedConfidence: confidence, coverage: coverage)
    }

    // MARK: bootstrap interval for a ratio of medians

    /// Percentile-bootstrap confidence interval for median(candidate) / median(baseline).
    ///
    /// Each resample draws both samples with replacement, independently, from a SplitMix64
    /// generator seeded with `seed`, so that the same data and seed always give the same
    /// interval (reports are reproducible). Nil if either sample is empty or a resampled
    /// baseline median is zero.
    public static func bootstrapRatioOfMedians(
        baseline a: [Double], candidate b: [Double],
        resamples: Int = 2000, confidence: Double = 0.95, seed: UInt64 = 0x5EED_0F_BE9C
    ) -> RatioInterval? {
        precondition(resamples > 0, "resamples must be positive")
        precondition(confidence > 0 && confidence < 1, "confidence \(confidence) outside (0, 1)")
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let ma = median(a)
        guard ma != 0 else { return nil }
        var rng = SplitMix64(seed: seed)
        var ratios = [Double]()
        ratios.reserveCapacity(resamples)
        var ra = [Double](repeating: 0, count: a.count)
        var rb = [Double](repeating: 0, count: b.count)
        for _ in 0..<resamples {
            for i in ra.indices { ra[i] = a[rng.index(below: a.count)] }
            for i in rb.indices { rb[i] = b[rng.index(below: b.count)] }
            let den = median(ra)
            guard den != 0 else { return nil }
            ratios.append(median(rb) / den)
        }
        ratios.sort()
        let alphaHalf = (1 - confidence) / 2
        return RatioInterval(
            estimate: median(b) / ma,
            lower: quantile(sorted: ratios, alphaHalf),
            upper: quantile(sorted: ratios, 1 - alphaHalf),
            confidence: confidence, resamples: resamples, seed: seed)
    }

    // MARK: paired ratio, for repetitions measured round by round

    /// The ratio of two configurations whose repetitions were interleaved (round k of each ran
    /// back to back): the median of the per-round ratios candidate[k] / baseline[k], with the
    /// distribution-free interval of that median (`medianConfidenceInterval`). Pairing cancels
    /// drift slower than a round: on a shared machine whose speed changes in phases lasting
    /// minutes, the ratio of the two medians mixes rounds from different phases and its
    /// bootstrap interval widens to cover both. Nil when the samples are empty, of different
    /// lengths, or a baseline value is zero.
    public static func pairedRatio(baseline a: [Double], candidate b: [Double],
                                   confidence: Double = 0.95) -> PairedRatio? {
        guard !a.isEmpty, a.count == b.count, !a.contains(0) else { return nil }
        let ratios = zip(b, a).map { $0 / $1 }
        guard let ci = medianConfidenceInterval(ratios, confidence: confidence) else { return nil }
        return PairedRatio(estimate: median(ratios), lower: ci.lower, upper: ci.upper,
                           coverage: ci.coverage, reachesConfidence: ci.reachesConfidence,
                           pairs: ratios.count)
    }

    // MARK: Mann-Whitney U

    /// Two-sided Mann-Whitney U (Wilcoxon rank-sum) test with the normal approximation, tie
    /// correction of the variance and a continuity correction of 0.5 — the same as R's
    /// `wilcox.test(a, b, exact = FALSE, correct = TRUE)` and SciPy's
    /// `mannwhitneyu(a, b, method="asymptotic")`. The approximation is fair from about eight
    /// values per sample; below that treat the p-value as rough. Nil if a sample is empty.
    public static func mannWhitneyU(_ a: [Double], _ b: [Double]) -> MannWhitneyResult? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let n1 = Double(a.count), n2 = Double(b.count)
        let n = n1 + n2
        // Rank the pooled sample, ties getting the mean of the ranks they span.
        var pooled = a.map { ($0, 0) } + b.map { ($0, 1) }
        pooled.sort { $0.0 < $1.0 }
        var rankSumA = 0.0
        var tieTerm = 0.0   // Σ (t³ - t) over groups of t tied values
        var i = 0
        while i < pooled.count {
            var j = i
            while j + 1 < pooled.count && pooled[j + 1].0 == pooled[i].0 { j += 1 }
            let t = Double(j - i + 1)
            let rank = Double(i + j) / 2 + 1   // mean of 1-based ranks i+1 ... j+1
            for k in i...j where pooled[k].1 == 0 { rankSumA += rank }
            tieTerm += t * t * t - t
            i = j + 1
        }
        let u1 = rankSumA - n1 * (n1 + 1) / 2
        let u2 = n1 * n2 - u1
        let mu = n1 * n2 / 2
        let variance = n1 * n2 / 12 * ((n + 1) - tieTerm / (n * (n - 1)))
        guard variance > 0 else {
            // Every value tied: no evidence of any difference.
            return MannWhitneyResult(u1: u1, u2: u2, z: 0, pValue: 1)
        }
        let diff = u1 - mu
        let corrected = Swift.max(abs(diff) - 0.5, 0)
        let z = (diff < 0 ? -corrected : corrected) / variance.squareRoot()
        let p = Swift.min(1, erfc(abs(z) / 2.0.squareRoot()))   // 2·(1 - Φ(|z|))
        return MannWhitneyResult(u1: u1, u2: u2, z: z, pValue: p)
    }

    /// ln Γ(x). (Glibc's `lgamma` is overloaded with a tuple-returning variant; name the one
    /// we mean.)
    static func logGamma(_ x: Double) -> Double {
        let value: Double = lgamma(x)
        return value
    }

    /// Standard normal cumulative distribution function.
    public static func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }
}

/// An order-statistic confidence interval for a median.
public struct MedianInterval: Codable, Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    /// 1-based ranks of the order statistics used.
    public var lowerRank: Int
    public var upperRank: Int
    public var requestedConfidence: Double
    /// The exact coverage of [x(lowerRank), x(upperRank)], at least `requestedConfidence`
    /// unless the sample is too small.
    public var coverage: Double
    public var reachesConfidence: Bool { coverage >= requestedConfidence }
}

/// A bootstrap confidence interval for median(candidate) / median(baseline).
public struct RatioInterval: Codable, Sendable, Equatable {
    public var estimate: Double
    public var lower: Double
    public var upper: Double
    public var confidence: Double
    public var resamples: Int
    public var seed: UInt64
}

/// The median of per-round ratios and its order-statistic interval (`pairedRatio`).
public struct PairedRatio: Codable, Sendable, Equatable {
    public var estimate: Double
    public var lower: Double
    public var upper: Double
    /// The interval's achieved coverage; below 95% when there are fewer than six rounds.
    public var coverage: Double
    public var reachesConfidence: Bool
    public var pairs: Int
}

/// The outcome of a Mann-Whitney U test.
public struct MannWhitneyResult: Codable, Sendable, Equatable {
    /// U of the first sample (number of pairs where it is the larger, ties counting one half).
    public var u1: Double
    public var u2: Double
    /// Continuity-corrected normal score of u1; positive when the first sample tends larger.
    public var z: Double
    /// Two-sided p-value.
    public var pValue: Double
}

/// Sebastiano Vigna's SplitMix64: a tiny, fast, well-mixed generator whose output depends only
/// on the seed — what reproducible resampling needs (the standard library's generator is
/// seeded by the system and cannot be replayed).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform index in 0..<bound by multiply-high (Lemire). The bias, bound / 2^64, is
    /// negligible, and unlike `Int.random(in:using:)` the mapping is fixed by this code rather
    /// than by the standard library version.
    public mutating func index(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(UInt64(bound).multipliedFullWidth(by: next()).high)
    }
}

/// The usual summary of one configuration's repetitions.
public struct SampleSummary: Codable, Sendable, Equatable {
    public var count: Int
    public var median: Double
    public var mean: Double
    /// Nil below two values (JSON has no NaN).
    public var standardDeviation: Double?
    public var min: Double
    public var max: Double
    /// Nil only for an empty sample, which `init` refuses anyway.
    public var medianInterval: MedianInterval?

    /// Nil for an empty sample.
    public init?(_ xs: [Double], confidence: Double = 0.95) {
        guard !xs.isEmpty else { return nil }
        count = xs.count
        median = Statistics.median(xs)
        mean = Statistics.mean(xs)
        standardDeviation = xs.count >= 2 ? Statistics.standardDeviation(xs) : nil
        min = xs.min()!
        max = xs.max()!
        medianInterval = Statistics.medianConfidenceInterval(xs, confidence: confidence)
    }
}
