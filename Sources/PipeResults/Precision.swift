import Foundation

/// A run's precision target: keep adding interleaved rounds until every configuration's median
/// is known to within ±`fraction` — its order-statistic interval (the one the summary prints,
/// `Statistics.medianConfidenceInterval`) lies inside [median × (1 − fraction), median × (1 +
/// fraction)] — as hyperfine and package-benchmark run until a budget says stop.
///
/// The interval of n samples narrows as 1/√n for any distribution (its ranks are n/2 ± z·√n/2),
/// so a configuration whose repetitions spread by ±s around their median gets there after
/// about (z·s / fraction)² rounds, with z = 1.96 at 95%: what the tests check on known
/// distributions.
public struct PrecisionTarget: Sendable, Equatable, Codable {
    /// 0.05 for ±5%.
    public var fraction: Double
    /// Judge only the rounds that ran on the run's usual placement (the core-to-core probe's
    /// rule, `ResultsSummary.offPlacementRounds`); the others are still recorded.
    public var usualRoundsOnly: Bool
    public var confidence: Double

    public init(fraction: Double, usualRoundsOnly: Bool = false, confidence: Double = 0.95) {
        precondition(fraction > 0 && fraction < 1, "precision \(fraction) outside (0, 1)")
        self.fraction = fraction
        self.usualRoundsOnly = usualRoundsOnly
        self.confidence = confidence
    }

    /// How far the median interval reaches from the median, as a fraction of the median:
    /// max(median − lower, upper − median) / |median|. Nil when the interval does not yet reach
    /// the confidence (fewer than six samples at 95%) or the median is 0.
    public func relativeHalfWidth(_ samples: [Double]) -> Double? {
        guard let interval = Statistics.medianConfidenceInterval(samples, confidence: confidence),
              interval.reachesConfidence else { return nil }
        let median = Statistics.median(samples)
        guard median != 0 else { return nil }
        return max(median - interval.lower, interval.upper - median) / abs(median)
    }

    /// Whether `samples` know their median to within the target.
    public func isMet(_ samples: [Double]) -> Bool {
        relativeHalfWidth(samples).map { $0 <= fraction } ?? false
    }

    /// The samples the rule judges: one per round (`samples[k]` from round k), less the rounds
    /// in `offRounds` when only the usual placement counts.
    public func judged(_ samples: [Double], offRounds: Set<Int>) -> [Double] {
        guard usualRoundsOnly else { return samples }
        return samples.indices.filter { !offRounds.contains($0) }.map { samples[$0] }
    }

    /// "±5%", "±2.5%".
    public var text: String { "±" + String(format: "%g", fraction * 100) + "%" }
}
