import CPipeSys
import PipeResults
/// A named workload: the unit the runner repeats and compares.
public struct RunConfiguration: Sendable {
    public var name: String
    public var workload: Workload
    public init(name: String, workload: Workload) {
        self.name = name
        self.workload = workload
    }
}

/// One measured repetition.
public struct Repetition: Encodable, Sendable {
    /// Position in the whole run's sequence (0-based, across configurations), to look for drift.
    public var order: Int
    /// The workload's metric (`WorkloadDefinition.metric`).
    public var value: Double
    /// Everything the repetition measured (`StreamResult`, `PingPongResult`, …).
    public var result: any WorkloadResult
    /// The larger of the core-to-core round trips measured just before and just after this
    /// repetition, ns: above the run's usual value, the host moved the vCPUs during it.
    public var probeNs: Double? = nil
    /// The bytes per stream it moved when the runner sized it by time (`--total auto` under
    /// `Runner.minTimeNs`); nil when the workload's own size was used.
    public var sizedTotal: Int? = nil

    public init(order: Int = 0, result: any WorkloadResult, probeNs: Double? = nil) {
        self.order = order
        self.value = result.value
        self.result = result
        self.probeNs = probeNs
    }

    enum CodingKeys: String, CodingKey { case order, value, result, probeNs, sizedTotal }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(order, forKey: .order)
        try c.encode(value, forKey: .value)
        try result.encode(to: c.superEncoder(forKey: .result))
        try c.encodeIfPresent(probeNs, forKey: .probeNs)
        try c.encodeIfPresent(sizedTotal, forKey: .sizedTotal)
    }
}

public struct ConfigurationReport: Encodable, Sendable {
    public var name: String
    public var metric: String
    public var unit: String
    public var higherIsBetter: Bool
    public var summary: SampleSummary
    public var repetitions: [Repetition]
    /// Under a precision target: how far the median interval of the judged rounds reaches from
    /// the median, as a fraction of it (nil below six judged rounds).
    public var precisionReached: Double? = nil
    public var samples: [Double] { repetitions.map(\.value) }
}

/// Why a run stopped adding rounds.
public enum RunStop: String, Codable, Sendable {
    /// No precision target: the fixed count ran.
    case fixedCount = "fixed count"
    /// Every configuration met the precision target.
    case precisionReached = "precision reached"
    case maxRepetitions = "max repetitions"
    case maxTime = "max time"
}

/// Candidate against baseline (the first configuration).
public struct Comparison: Codable, Sendable {
    public var baseline: String
    public var candidate: String
    /// median(candidate) / median(baseline) with a bootstrap interval.
    public var ratio: RatioInterval?
    /// Two-sided test of "the two samples come from the same distribution".
    public var mannWhitney: MannWhitneyResult?
}

public struct RunReport: Encodable, Sendable {
    public var environment: EnvironmentInfo?
    public var coreProbeBefore: CoreProbeResult?
    public var coreProbeAfter: CoreProbeResult?
    public var warmupRepetitions: Int
    /// The rounds run (with a precision target, as many as it took).
    public var repetitions: Int
    public var configurations: [ConfigurationReport]
    public var comparisons: [Comparison]
    /// The time repetitions were sized to (for those that were: `Repetition.sizedTotal`).
    public var minTimeNs: Int64? = nil
    public var precision: PrecisionTarget? = nil
    public var stop: RunStop = .fixedCount
}

/// Runs configurations repeatedly and summarises them.
///
/// Repetitions are interleaved — A B C A B C … — rather than all of A then all of B, because
/// on a VM the speed of cross-core traffic drifts over minutes as the host moves vCPUs: run in
/// blocks, a drift would look like a difference between configurations; interleaved, it
/// spreads over all of them. Warm-up rounds (same interleaving) are run and discarded.
/// A core-to-core probe is taken just before the first repetition and after the last, and a
/// shorter one between every two measurements, so a report shows whether, and during which
/// repetitions, the placement changed under it.
public struct Runner: Sendable {
    public struct Probe: Sendable {
        public var cpuA: Int
        public var cpuB: Int
        public var roundTrips: Int
        public init(cpuA: Int, cpuB: Int, roundTrips: Int = CoreProbe.defaultRoundTrips) {
            self.cpuA = cpuA
            self.cpuB = cpuB
            self.roundTrips = roundTrips
        }
    }

    public var warmupRepetitions: Int
    /// Rounds run at least (without a precision target: exactly).
    public var repetitions: Int
    /// Workloads whose size is the runner's (`Workload.sizing`) are calibrated in the first
    /// warm-up round (in a round of its own with no warm-up) so that a repetition lasts at
    /// least this long; nil or 0: their default size.
    public var minTimeNs: Int64? = Runner.defaultMinTimeNs
    /// Keep adding rounds after `repetitions` until every configuration meets it, or
    /// `maxRepetitions` rounds ran, or `maxTimeNs` passed since the first measured round.
    public var precision: PrecisionTarget? = nil
    public var maxRepetitions = Runner.defaultMaxRepetitions
    public var maxTimeNs: Int64? = nil
    /// The clock calibration and `maxTimeNs` read (CLOCK_MONOTONIC; tests give their own).
    public var clock: @Sendable () -> Int64 = { pb_monotonic_ns() }
    /// Nil: no probe. Default: the first configuration's pinned CPUs, or CPUs 0 and 1.
    public var probe: Probe?
    public var captureEnvironment: Bool
    public var confidence: Double
    public var bootstrapResamples: Int
    public var bootstrapSeed: UInt64
    /// Called before each repetition with a line saying what runs next.
    public var progress: (@Sendable (String) -> Void)?

    public init(
        warmupRepetitions: Int = 1, repetitions: Int = 10, probe: Probe? = nil,
        captureEnvironment: Bool = true, confidence: Double = 0.95,
        bootstrapResamples: Int = 2000, bootstrapSeed: UInt64 = 0x5EED_0F_BE9C,
        progress: (@Sendable (String) -> Void)? = nil
    ) {
        self.warmupRepetitions = warmupRepetitions
        self.repetitions = repetitions
        self.probe = probe
        self.captureEnvironment = captureEnvironment
        self.confidence = confidence
        self.bootstrapResamples = bootstrapResamples
        self.bootstrapSeed = bootstrapSeed
        self.progress = progress
    }

    /// 100 ms: longer than a scheduling hiccup on a shared 2-vCPU machine, short enough for
    /// 15 rounds of several configurations in a minute.
    public static let defaultMinTimeNs: Int64 = 100_000_000
    public static let defaultMaxRepetitions = 50
    /// Calibration measures at most this many more repetitions (each step grows the total at
    /// least 1.25×, most often 16×: 12 steps cover any workload that can reach the time).
    static let maxCalibrationSteps = 12

    /// The probe between two measurements makes this fraction of the run probe's round trips
    /// (under a millisecond).
    static let shortProbeFraction = 10

    /// The probe used when none is given.
    public static func defaultProbe(for configurations: [RunConfiguration]) -> Probe {
        if let (a, b) = configurations.first?.workload.probeCPUs { return Probe(cpuA: a, cpuB: b) }
        let cpus = Topology.usableCPUList()
        return Probe(cpuA: cpus.first ?? 0, cpuB: cpus.count > 1 ? cpus[1] : (cpus.first ?? 0))
    }

    public func run(_ configurations: [RunConfiguration]) throws -> RunReport {
        guard !configurations.isEmpty else { throw HarnessError.invalidArgument("no configurations to run") }
        guard repetitions > 0, warmupRepetitions >= 0 else {
            throw HarnessError.invalidArgument("repetitions must be positive and warm-up repetitions not negative")
        }
        let names = configurations.map(\.name)
        guard Set(names).count == names.count else { throw HarnessError.invalidArgument("configuration names must be unique: \(names)") }

        if precision != nil, maxRepetitions < repetitions {
            throw HarnessError.invalidArgument("max repetitions \(maxRepetitions) is below the repetitions \(repetitions)")
        }

        let environment = captureEnvironment ? EnvironmentInfo.capture() : nil
        var workloads = configurations.map(\.workload)
        let minTime = (minTimeNs ?? 0) > 0 ? minTimeNs : nil
        let calibrating = minTime != nil && workloads.contains { $0.sizing != nil }
        for round in 0..<max(warmupRepetitions, calibrating ? 1 : 0) {
            for (i, c) in configurations.enumerated() {
                if round < warmupRepetitions { progress?("warm-up \(round + 1)/\(warmupRepetitions): \(c.name)") }
                _ = try Self.measure(workloads[i])
                if round == 0, let minTime, workloads[i].sizing != nil {
                    workloads[i] = try Self.calibrate(workloads[i], minTimeNs: minTime, clock: clock)
                }
            }
        }

        let probeSettings = probe ?? Self.defaultProbe(for: configurations)
        let before = try CoreProbe.measure(cpuA: probeSettings.cpuA, cpuB: probeSettings.cpuB, roundTrips: probeSettings.roundTrips)
        var collected = [[Repetition]](repeating: [], count: configurations.count)
        var order = 0
        let shortProbe = {
            try CoreProbe.measure(cpuA: probeSettings.cpuA, cpuB: probeSettings.cpuB,
                                  roundTrips: max(100, probeSettings.roundTrips / Self.shortProbeFraction)).medianNs
        }
        var probeBefore = try shortProbe()
        let started = clock()
        var rounds = 0
        var stop = RunStop.fixedCount
        let planned = precision == nil ? repetitions : maxRepetitions
        while true {
            if rounds >= repetitions {
                guard let precision else { break }
                if Self.judged(collected, precision).allSatisfy(precision.isMet) { stop = .precisionReached; break }
                if rounds >= maxRepetitions { stop = .maxRepetitions; break }
                if let maxTimeNs, clock() - started >= maxTimeNs { stop = .maxTime; break }
            }
            for (i, c) in configurations.enumerated() {
                progress?("repetition \(rounds + 1)/\(planned): \(c.name)")
                var rep = try Self.measure(workloads[i])
                let probeAfter = try shortProbe()
                rep.order = order
                rep.probeNs = max(probeBefore, probeAfter)
                probeBefore = probeAfter
                order += 1
                if let minTime, let sizing = workloads[i].sizing {
                    rep.sizedTotal = sizing.total
                    // Shorter than the minimum: the host sped up since calibration. Later
                    // rounds of this configuration move more (never less).
                    if let timed = rep.result.timedNs,
                       let next = TimeSizing.nextTotal(total: sizing.total, elapsedNs: timed, minTimeNs: minTime, granule: sizing.granule) {
                        workloads[i] = try sizing.resized(next)
                    }
                }
                collected[i].append(rep)
            }
            rounds += 1
        }
        let after = try CoreProbe.measure(cpuA: probeSettings.cpuA, cpuB: probeSettings.cpuB, roundTrips: probeSettings.roundTrips)
        let judged = precision.map { Self.judged(collected, $0) }

        var reports = zip(configurations, collected).map { c, reps in
            ConfigurationReport(
                name: c.name, metric: c.workload.metricName, unit: c.workload.unit,
                higherIsBetter: c.workload.higherIsBetter,
                summary: SampleSummary(reps.map(\.value), confidence: confidence)!,   // repetitions > 0
                repetitions: reps)
        }
        for i in reports.indices {
            if let precision, let judged { reports[i].precisionReached = precision.relativeHalfWidth(judged[i]) }
        }
        var comparisons: [Comparison] = []
        if let baseline = reports.first {
            for candidate in reports.dropFirst() {
                comparisons.append(Comparison(
                    baseline: baseline.name, candidate: candidate.name,
                    ratio: Statistics.bootstrapRatioOfMedians(
                        baseline: baseline.samples, candidate: candidate.samples,
                        resamples: bootstrapResamples, confidence: confidence, seed: bootstrapSeed),
                    mannWhitney: Statistics.mannWhitneyU(candidate.samples, baseline.samples)))
            }
        }
        return RunReport(
            environment: environment, coreProbeBefore: before, coreProbeAfter: after,
            warmupRepetitions: warmupRepetitions, repetitions: rounds,
            configurations: reports, comparisons: comparisons,
            minTimeNs: minTime, precision: precision, stop: stop)
    }

    /// Calibrates a workload sized by time, after its first warm-up repetition (which pays
    /// the first faults of its buffers and is not timed for this): measures it (its timed
    /// span, `WorkloadResult.timedNs`, else the whole measurement), grows its
    /// total (`TimeSizing.nextTotal`) and measures again until two repetitions in a row last
    /// `minTimeNs`. These measurements are warm-up: none is recorded.
    static func calibrate(_ workload: Workload, minTimeNs: Int64, clock: @Sendable () -> Int64) throws -> Workload {
        var w = workload
        func timed() throws -> Int64 {
            let start = clock()
            let rep = try measure(w)
            return rep.result.timedNs ?? (clock() - start)
        }
        var elapsed = try timed()
        for _ in 0..<Self.maxCalibrationSteps {
            guard let sizing = w.sizing else { break }
            if let next = TimeSizing.nextTotal(total: sizing.total, elapsedNs: elapsed, minTimeNs: minTimeNs, granule: sizing.granule) {
                w = try sizing.resized(next)
                elapsed = try timed()
                continue
            }
            // Long enough once: confirm it, since one repetition can be slowed several times
            // over by the host; the faster of the two decides.
            let again = try timed()
            if again >= minTimeNs { break }
            elapsed = again
        }
        return w
    }

    /// Each configuration's samples as the precision target judges them: all rounds, or those
    /// whose probes show the usual placement (`ResultsSummary.offPlacementRounds`).
    static func judged(_ collected: [[Repetition]], _ precision: PrecisionTarget) -> [[Double]] {
        var off: Set<Int> = []
        if precision.usualRoundsOnly {
            let probes = collected.flatMap { reps in reps.enumerated().compactMap { k, r in r.probeNs.map { (round: k, ns: $0) } } }
            off = ResultsSummary.offPlacementRounds(probes)
        }
        return collected.map { precision.judged($0.map(\.value), offRounds: off) }
    }

    /// One repetition. A verified run that delivered a wrong or missing byte is an error: its
    /// timing measures a broken transport.
    public static func measure(_ workload: Workload) throws -> Repetition {
        Repetition(result: try workload.measure())
    }
}
