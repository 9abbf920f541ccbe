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

    public init(order: Int = 0, result: any WorkloadResult, probeNs: Double? = nil) {
        self.order = order
        self.value = result.value
        self.result = result
        self.probeNs = probeNs
    }

    enum CodingKeys: String, CodingKey { case order, value, result, probeNs }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(order, forKey: .order)
        try c.encode(value, forKey: .value)
        try result.encode(to: c.superEncoder(forKey: .result))
        try c.encodeIfPresent(probeNs, forKey: .probeNs)
    }
}

public struct ConfigurationReport: Encodable, Sendable {
    public var name: String
    public var metric: String
    public var unit: String
    public var higherIsBetter: Bool
    public var summary: SampleSummary
    public var repetitions: [Repetition]
    public var samples: [Double] { repetitions.map(\.value) }
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
    public var repetitions: Int
    public var configurations: [ConfigurationReport]
    public var comparisons: [Comparison]
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
    public var repetitions: Int
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

        let environment = captureEnvironment ? EnvironmentInfo.capture() : nil
        for round in 0..<warmupRepetitions {
            for c in configurations {
                progress?("warm-up \(round + 1)/\(warmupRepetitions): \(c.name)")
                _ = try Self.measure(c.workload)
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
        for round in 0..<repetitions {
            for (i, c) in configurations.enumerated() {
                progress?("repetition \(round + 1)/\(repetitions): \(c.name)")
                var rep = try Self.measure(c.workload)
                let probeAfter = try shortProbe()
                rep.order = order
                rep.probeNs = max(probeBefore, probeAfter)
                probeBefore = probeAfter
                order += 1
                collected[i].append(rep)
            }
        }
        let after = try CoreProbe.measure(cpuA: probeSettings.cpuA, cpuB: probeSettings.cpuB, roundTrips: probeSettings.roundTrips)

        let reports = zip(configurations, collected).map { c, reps in
            ConfigurationReport(
                name: c.name, metric: c.workload.metricName, unit: c.workload.unit,
                higherIsBetter: c.workload.higherIsBetter,
                summary: SampleSummary(reps.map(\.value), confidence: confidence)!,   // repetitions > 0
                repetitions: reps)
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
            warmupRepetitions: warmupRepetitions, repetitions: repetitions,
            configurations: reports, comparisons: comparisons)
    }

    /// One repetition. A verified run that delivered a wrong or missing byte is an error: its
    /// timing measures a broken transport.
    public static func measure(_ workload: Workload) throws -> Repetition {
        Repetition(result: try workload.measure())
    }
}
