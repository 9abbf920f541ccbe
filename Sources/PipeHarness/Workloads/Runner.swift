/// One thing to measure.
public enum Workload: Sendable {
    case stream(StreamConfig)
    case pingpong(PingPongConfig)
    /// K writer/reader pairs at once; summarised by aggregate throughput.
    case pairs(PairsConfig)
    /// A stream in an engine whose KVA is filled to a tier; summarised by its throughput
    /// (0 for the exhausted tier, where no pipe can be made: see the result's `workloadError`).
    case kvaPressure(KVAPressureConfig)
    /// K writers into one reader multiplexing them (poll or kqueue); summarised by aggregate
    /// throughput.
    case fanin(FanInConfig)

    /// The number each repetition is summarised by: stream throughput in bytes per second
    /// (higher is better), pingpong median round trip in ns (lower is better). The full
    /// per-repetition results are kept beside it.
    public var metricName: String {
        switch self {
        case .stream: return "throughput"
        case .pingpong: return "p50 round trip"
        case .pairs: return "aggregate throughput"
        case .kvaPressure: return "throughput"
        case .fanin: return "aggregate throughput"
        }
    }
    public var unit: String {
        switch self {
        case .stream, .pairs, .kvaPressure, .fanin: return "B/s"
        case .pingpong: return "ns"
        }
    }
    public var higherIsBetter: Bool {
        switch self {
        case .stream, .pairs, .kvaPressure, .fanin: return true
        case .pingpong: return false
        }
    }
}

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
public struct Repetition: Codable, Sendable {
    /// Position in the whole run's sequence (0-based, across configurations), to look for drift.
    public var order: Int
    public var value: Double
    public var stream: StreamResult?
    public var pingpong: PingPongResult?
    public var pairs: PairsResult? = nil
    public var kvaPressure: KVAPressureResult? = nil
    public var fanin: FanInResult? = nil
    /// The larger of the core-to-core round trips measured just before and just after this
    /// repetition, ns: above the run's usual value, the host moved the vCPUs during it.
    public var probeNs: Double? = nil
}

public struct ConfigurationReport: Codable, Sendable {
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

public struct RunReport: Codable, Sendable {
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
        if let first = configurations.first {
            switch first.workload {
            case .stream(let c):
                if let a = c.writerCPU, let b = c.readerCPU { return Probe(cpuA: a, cpuB: b) }
            case .pingpong(let c):
                if let a = c.clientCPU, let b = c.serverCPU { return Probe(cpuA: a, cpuB: b) }
            case .pairs(let c):
                if let p = c.placements.first, let a = p.writerCPU, let b = p.readerCPU { return Probe(cpuA: a, cpuB: b) }
            case .kvaPressure(let c):
                if let a = c.stream.writerCPU, let b = c.stream.readerCPU { return Probe(cpuA: a, cpuB: b) }
            case .fanin(let c):
                if let a = c.placement.writerCPU, let b = c.placement.readerCPU { return Probe(cpuA: a, cpuB: b) }
            }
        }
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
        switch workload {
        case .stream(let config):
            let r = try StreamWorkload.run(config)
            if config.verify {
                if let m = r.firstMismatch { throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual) }
                if r.bytesReceived != r.totalBytes { throw HarnessError.unexpectedEOF(expected: r.totalBytes, received: r.bytesReceived) }
            }
            return Repetition(order: 0, value: r.bytesPerSecond, stream: r, pingpong: nil)
        case .pingpong(let config):
            let r = try PingPongWorkload.run(config).result
            if config.verify, let m = r.firstMismatch {
                throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual)
            }
            return Repetition(order: 0, value: Double(r.latency.p50), stream: nil, pingpong: r)
        case .pairs(let config):
            let r = try PairsWorkload.run(config)
            if config.verify {
                for p in r.perPair {
                    if let m = p.firstMismatch {
                        throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual)
                    }
                    if p.bytesReceived != p.totalBytes {
                        throw HarnessError.unexpectedEOF(expected: p.totalBytes, received: p.bytesReceived)
                    }
                }
            }
            return Repetition(order: 0, value: r.aggregateBytesPerSecond, stream: nil, pingpong: nil, pairs: r)
        case .kvaPressure(let config):
            let r = try KVAPressureWorkload.run(config)
            if config.stream.verify, let s = r.stream {
                if let m = s.firstMismatch { throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual) }
                if s.bytesReceived != s.totalBytes { throw HarnessError.unexpectedEOF(expected: s.totalBytes, received: s.bytesReceived) }
            }
            return Repetition(order: 0, value: r.bytesPerSecond, stream: r.stream, pingpong: nil, kvaPressure: r)
        case .fanin(let config):
            let r = try FanInWorkload.run(config)
            if config.verify {
                if let m = r.mismatches.first?.mismatch {
                    throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual)
                }
                if let short = r.perWriterBytes.first(where: { $0 != r.bytesPerWriter }) {
                    throw HarnessError.unexpectedEOF(expected: r.bytesPerWriter, received: short)
                }
            }
            return Repetition(order: 0, value: r.aggregateBytesPerSecond, stream: nil, pingpong: nil, fanin: r)
        }
    }
}
