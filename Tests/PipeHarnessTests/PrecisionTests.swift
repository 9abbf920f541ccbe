import Foundation
import Synchronization
import Testing
@testable import PipeHarness
import PipeResults

/// The precision target's stopping rule on synthetic samples, and the runner's time sizing and
/// stopping driven by synthetic workloads and a synthetic clock: no test here reads a real
/// clock for its outcome.
@Suite struct PrecisionTests {
    /// A uniform draw in [0, 1) from a seeded generator.
    static func uniform(_ rng: inout SplitMix64) -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    /// A standard normal draw (Box-Muller).
    static func normal(_ rng: inout SplitMix64) -> Double {
        let u = max(uniform(&rng), 1e-300), v = uniform(&rng)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }

    /// The round at which a sequence first meets the target (nil: not by `limit`).
    static func stoppingRound(_ target: PrecisionTarget, limit: Int, draw: () -> Double) -> Int? {
        var xs: [Double] = []
        while xs.count < limit {
            xs.append(draw())
            if target.isMet(xs) { return xs.count }
        }
        return nil
    }

    @Test func halfWidthNeedsSixSamplesAndIsRelative() throws {
        let t = PrecisionTarget(fraction: 0.05)
        #expect(t.relativeHalfWidth([1, 1, 1, 1, 1]) == nil, "five samples reach only 93.75%")
        #expect(t.relativeHalfWidth([2, 2, 2, 2, 2, 2]) == 0)
        // n = 10: the 95% interval is [x(2), x(9)]; median 5.5; reach max(5.5-2, 9-5.5) / 5.5.
        let xs = (1...10).map(Double.init)
        #expect(try #require(t.relativeHalfWidth(xs)) == 3.5 / 5.5)
        #expect(t.relativeHalfWidth(xs.map { $0 * 1e9 }) == t.relativeHalfWidth(xs), "scale-free")
        #expect(!t.isMet(xs) && PrecisionTarget(fraction: 0.7).isMet(xs))
        #expect(t.text == "±5%" && PrecisionTarget(fraction: 0.025).text == "±2.5%")
    }

    /// Theory: the rule's interval of n samples is [x(l), x(n+1-l)], l from the binomial
    /// (`Statistics.medianConfidenceInterval`), and x(l) sits near the population's quantile
    /// l/(n+1). So a distribution with quantile function Q and median m is expected to stop at
    /// the first n where max(m - Q(l/(n+1)), Q(1 - l/(n+1)) - m) ≤ p·m: about (1.96·s/p)² for
    /// a spread s (uniform: s = a; normal: s = σ·√(π/2)). Over 200 seeded sequences the median
    /// stopping round must land within 25% of it (a rule stopping on a sequence's own width
    /// runs a little past the fixed-n figure: 33 against 28 rounds for the normal at ±5%).
    static func expectedStop(_ target: PrecisionTarget, median m: Double, quantile: (Double) -> Double) -> Int {
        (6...100_000).first { n in
            let l = Statistics.medianConfidenceInterval((1...n).map(Double.init), confidence: target.confidence)!.lowerRank
            let q = Double(l) / Double(n + 1)
            return max(m - quantile(q), quantile(1 - q) - m) <= target.fraction * m
        }!
    }

    /// The standard normal's quantile, by bisection on its CDF.
    static func normalQuantile(_ p: Double) -> Double {
        var lo = -10.0, hi = 10.0
        for _ in 0..<100 {
            let mid = (lo + hi) / 2
            if Statistics.normalCDF(mid) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    static func medianStop(_ target: PrecisionTarget, seeds: ClosedRange<UInt64>, draw: @escaping (inout SplitMix64) -> Double) -> Double {
        let stops = seeds.map { seed -> Int in
            var rng = SplitMix64(seed: seed)
            return stoppingRound(target, limit: 100_000) { draw(&rng) } ?? 100_000
        }.sorted()
        return Double(stops[stops.count / 2 - 1] + stops[stops.count / 2]) / 2
    }

    /// Uniform on [0.8, 1.2], ±5%: about (1.96·0.2/0.05)² ≈ 61 rounds.
    @Test func uniformSamplesStopWhenTheorySays() {
        let target = PrecisionTarget(fraction: 0.05)
        let theory = Double(Self.expectedStop(target, median: 1) { 0.8 + 0.4 * $0 })
        #expect(theory > 50 && theory < 75)
        let median = Self.medianStop(target, seeds: 1...200) { 0.8 + 0.4 * Self.uniform(&$0) }
        #expect(abs(median - theory) / theory < 0.25, "median stop \(median), theory \(theory)")
    }

    /// A normal with σ = 10% of its median (5e9, a throughput in B/s), ±5% and ±2.5%: about
    /// 24 and 97 rounds by the approximation, more by the exact ranks.
    @Test func normalSamplesStopWhenTheorySays() {
        for p in [0.05, 0.025] {
            let target = PrecisionTarget(fraction: p)
            let theory = Double(Self.expectedStop(target, median: 5e9) { 5e9 * (1 + 0.1 * Self.normalQuantile($0)) })
            let median = Self.medianStop(target, seeds: 1001...1200) { 5e9 * (1 + 0.1 * Self.normal(&$0)) }
            #expect(abs(median - theory) / theory < 0.25, "±\(p): median stop \(median), theory \(theory)")
        }
    }

    /// Two placements half the time each (1 and 3): the median sits between modes and its
    /// interval spans both, so ±5% is never reached; judged over the usual rounds only it is
    /// at once.
    @Test func rulingOutOffPlacementRoundsReachesWhatMixingCannot() {
        let xs = (0..<200).map { $0 % 2 == 0 ? 1.0 : 3.0 }
        let all = PrecisionTarget(fraction: 0.05)
        #expect(!all.isMet(xs))
        let usual = PrecisionTarget(fraction: 0.05, usualRoundsOnly: true)
        let off = Set(xs.indices.filter { $0 % 2 == 1 })
        #expect(usual.judged(xs, offRounds: off) == Array(repeating: 1.0, count: 100))
        #expect(usual.isMet(usual.judged(xs, offRounds: off)))
        #expect(all.judged(xs, offRounds: off) == xs, "without usualRoundsOnly every round counts")
    }

    // MARK: the runner

    /// A synthetic workload: moves `total` bytes at `bytesPerNs`, reporting that as its timed
    /// span, and advances the synthetic clock by it; its values come from `values` in turn.
    final class Synthetic: Sendable {
        let clock = Atomic<Int64>(0)
        let calls = Atomic<Int>(0)
        let values: [Double]
        let bytesPerNs: Double
        /// From this measurement on (0-based), the workload runs 4 times faster.
        let speedUpAt: Int
        init(values: [Double] = [1], bytesPerNs: Double = 1, speedUpAt: Int = .max) {
            self.values = values
            self.bytesPerNs = bytesPerNs
            self.speedUpAt = speedUpAt
        }

        struct Result: WorkloadResult {
            var value: Double
            var timedNs: Int64?
            func record(into row: inout ResultsRow) {}
        }

        func workload(total: Int, sized: Bool) -> Workload {
            var w = Workload(kind: .stream, metric: .bytesPerSecond("throughput"), configuration: total, probeCPUs: nil) { [self] in
                let n = calls.add(1, ordering: .relaxed).oldValue
                let ns = Int64(Double(total) / (bytesPerNs * (n >= speedUpAt ? 4 : 1)))
                clock.add(ns, ordering: .relaxed)
                return Result(value: values[n % values.count], timedNs: ns)
            }
            if sized {
                w.sizing = TimeSizing(total: total, granule: 4096) { [self] t in workload(total: t, sized: false) }
            }
            return w
        }

        func runner(repetitions: Int, warmup: Int = 1) -> Runner {
            var r = Runner(warmupRepetitions: warmup, repetitions: repetitions,
                           probe: Runner.Probe(cpuA: 0, cpuB: 0, roundTrips: 100), captureEnvironment: false)
            r.clock = { [self] in clock.load(ordering: .relaxed) }
            return r
        }
    }

    /// nextTotal: grows at most 16× a step and at least 1.25×, in whole write sizes, aiming
    /// 1.2× above the minimum; nothing once the minimum is met.
    @Test func calibrationStepsFollowTheRule() {
        let ms: Int64 = 1_000_000
        #expect(TimeSizing.nextTotal(total: 1 << 20, elapsedNs: 100 * ms, minTimeNs: 100 * ms, granule: 4096) == nil)
        #expect(TimeSizing.nextTotal(total: 1 << 20, elapsedNs: 1 * ms, minTimeNs: 100 * ms, granule: 4096) == 16 << 20)
        #expect(TimeSizing.nextTotal(total: 1 << 20, elapsedNs: 60 * ms, minTimeNs: 100 * ms, granule: 4096) == 2 << 20)
        #expect(TimeSizing.nextTotal(total: 1 << 20, elapsedNs: 99 * ms, minTimeNs: 100 * ms, granule: 4096) == (5 << 20) / 4)
        #expect(TimeSizing.nextTotal(total: 1 << 20, elapsedNs: 95 * ms, minTimeNs: 100 * ms, granule: 4096) == 324 * 4096)
        #expect(TimeSizing.nextTotal(total: 100, elapsedNs: 50 * ms, minTimeNs: 100 * ms, granule: 64) == 256)
        #expect(TimeSizing.nextTotal(total: TimeSizing.maxTotal, elapsedNs: 1, minTimeNs: 100 * ms, granule: 4096) == nil)
    }

    /// At 1 byte/ns a 16 MiB repetition lasts 16.8 ms; calibrating to 100 ms goes from 16 MiB
    /// to 120 MB (×7.15, aiming at 120 ms), in whole 4 KiB writes, and confirms it: every
    /// recorded repetition then lasts
    /// at least 100 ms, and the report says which total it used. Without sizing, or with
    /// minTimeNs 0, the workload keeps its total.
    @Test func autoSizedWorkloadsAreCalibratedInTheWarmUp() throws {
        let s = Synthetic()
        let report = try s.runner(repetitions: 3).run([RunConfiguration(name: "a", workload: s.workload(total: 16 << 20, sized: true))])
        let totals = Set(report.configurations[0].repetitions.map(\.sizedTotal))
        #expect(totals.count == 1, "every repetition lasted the minimum: none grew")
        let total = try #require(totals.first ?? nil)
        #expect(total == 120_000_000 / 4096 * 4096 + 4096)
        #expect(Int64(total) >= Runner.defaultMinTimeNs)
        #expect(report.minTimeNs == Runner.defaultMinTimeNs)
        // Measurements: warm-up, calibration at 16 MiB, at the new total, its confirmation, 3 repetitions.
        #expect(s.calls.load(ordering: .relaxed) == 7)

        let fixed = Synthetic()
        let r2 = try fixed.runner(repetitions: 3).run([RunConfiguration(name: "a", workload: fixed.workload(total: 16 << 20, sized: false))])
        #expect(r2.configurations[0].repetitions.allSatisfy { $0.sizedTotal == nil } && fixed.calls.load(ordering: .relaxed) == 4)

        let off = Synthetic()
        var runner = off.runner(repetitions: 3, warmup: 0)
        runner.minTimeNs = 0
        let r3 = try runner.run([RunConfiguration(name: "a", workload: off.workload(total: 16 << 20, sized: true))])
        #expect(r3.configurations[0].repetitions.allSatisfy { $0.sizedTotal == nil } && r3.minTimeNs == nil && off.calls.load(ordering: .relaxed) == 3)

        // With no warm-up, calibration still runs, in a round of its own that records nothing.
        let cold = Synthetic()
        let r4 = try cold.runner(repetitions: 2, warmup: 0).run([RunConfiguration(name: "a", workload: cold.workload(total: 16 << 20, sized: true))])
        #expect(r4.configurations[0].repetitions.map(\.sizedTotal) == [total, total])
    }

    /// The host speeds up 4× after calibration (from the second round): that round lasts
    /// 30 ms, under the minimum, so the next rounds move 4× as much (by the calibration rule,
    /// in one step), and each row says how much it moved.
    @Test func repetitionsThatGetTooShortGrowTheNextRounds() throws {
        let s = Synthetic(speedUpAt: 5)   // warm-up, 3 calibration measurements, round 1
        let report = try s.runner(repetitions: 4).run([RunConfiguration(name: "a", workload: s.workload(total: 16 << 20, sized: true))])
        let totals = report.configurations[0].repetitions.compactMap(\.sizedTotal)
        #expect(totals.count == 4 && totals[0] == totals[1] && totals[2] == totals[3])
        let grown = try #require(TimeSizing.nextTotal(total: totals[1], elapsedNs: Int64(totals[1] / 4), minTimeNs: Runner.defaultMinTimeNs, granule: 4096))
        #expect(totals[2] == grown && grown > 3 * totals[1])
        #expect(report.configurations[0].repetitions.map { ($0.result as! Synthetic.Result).timedNs! >= Runner.defaultMinTimeNs }
                == [true, false, true, true])
    }

    /// Values that spread for six rounds and then repeat one value: the median interval of
    /// rounds 1..n closes to within ±5% at a round the order statistics fix (checked against
    /// the rule itself round by round), not before --repetitions, and the report says why.
    @Test func runnerAddsRoundsUntilThePrecisionIsMet() throws {
        let values: [Double] = [10, 20, 5, 30, 2, 40] + Array(repeating: 10, count: 100)
        let s = Synthetic(values: values)
        var runner = s.runner(repetitions: 6, warmup: 0)
        runner.minTimeNs = nil
        runner.precision = PrecisionTarget(fraction: 0.05)
        let report = try runner.run([RunConfiguration(name: "a", workload: s.workload(total: 1 << 20, sized: false))])
        let expected = (6...100).first { runner.precision!.isMet(Array(values.prefix($0))) }!
        #expect(report.repetitions == expected && report.stop == .precisionReached)
        #expect(report.configurations[0].repetitions.count == expected)
        #expect(try #require(report.configurations[0].precisionReached) <= 0.05)
    }

    /// Values that never settle stop at max repetitions; with a time limit first, at the time
    /// limit (the synthetic clock moves 1 ms per round).
    @Test func runnerStopsAtItsLimits() throws {
        func unsettled(_ limit: (inout Runner) -> Void) throws -> RunReport {
            let s = Synthetic(values: [1, 3])
            var runner = s.runner(repetitions: 6, warmup: 0)
            runner.minTimeNs = nil
            runner.precision = PrecisionTarget(fraction: 0.05)
            limit(&runner)
            return try runner.run([RunConfiguration(name: "a", workload: s.workload(total: 1_000_000, sized: false))])
        }
        let a = try unsettled { $0.maxRepetitions = 20 }
        #expect(a.repetitions == 20 && a.stop == .maxRepetitions)
        let b = try unsettled { $0.maxTimeNs = 10_000_000 }
        #expect(b.repetitions == 10 && b.stop == .maxTime)

        let s = Synthetic()
        var bad = s.runner(repetitions: 6)
        bad.precision = PrecisionTarget(fraction: 0.05)
        bad.maxRepetitions = 5
        #expect(throws: HarnessError.self) { try bad.run([RunConfiguration(name: "a", workload: s.workload(total: 1, sized: false))]) }
    }
}
