import PipeEngine
import Testing
@testable import PipeHarness

/// The kva-pressure workload against the seed's policy, with the default 4 MiB maxpipekva and
/// the default sizes (PIPE_SIZE 16 KiB, BIG_PIPE_SIZE 64 KiB, SMALL_PIPE_SIZE 4 KiB).
@Suite(.serialized) struct KVAPressureTests {
    static func config(tier: Int, queued: Int = 1) -> KVAPressureConfig {
        KVAPressureConfig(
            tierPercent: tier,
            stream: StreamConfig(transport: .engine, totalBytes: (512 << 10) + 3, writeSize: 65536, readSize: 65536, verify: true),
            ballastQueuedBytes: queued, bufferSizeSampleInterval: 1)
    }

    /// Each tier lands in its band, just above its target, and the workload pipe gets the
    /// buffer the seed's policy gives it there.
    @Test(arguments: [0, 25, 50, 60, 75, 90, 99])
    func tierReachesItsBandAndPolicyHolds(tier: Int) throws {
        let r = try KVAPressureWorkload.run(Self.config(tier: tier))
        let max = KVAPressureConfig.defaultMaxpipekva
        let before = r.countersBefore
        print("tier \(tier): \(r.ballastPipes) ballast pipes, pipekva \(before.pipekva) (\(before.pipekvaPercent)%), band \(r.band.rawValue), buffer \(r.bufferSizeAtCreation ?? -1) → \(r.bufferSizesSeen), end \(r.bufferSizeAtEnd ?? -1)")
        #expect(r.maxpipekva == max && before.maxpipekva == max)
        #expect(r.countersEmpty.pipekva == 0)
        #expect(before.pipes == r.ballastPipes)
        if tier == 0 {
            #expect(r.ballastPipes == 0 && before.pipekva == 0)
        } else {
            // Just above the target: one more ballast pair would have been one too many.
            #expect(before.pipekva > r.targetBytes)
            #expect(before.pipekva <= r.targetBytes + r.pipeSize + r.smallPipeSize)
        }
        let expectedBand: KVABand = tier >= 75 ? .aboveThreeQuarters : tier >= 50 ? .aboveHalf : .normal
        #expect(r.band == expectedBand)
        #expect(r.band == KVABand.of(pipekva: before.pipekva, maxpipekva: max))

        let s = try #require(r.stream)
        #expect(s.integrityOK)
        #expect(r.workloadError == nil)
        if expectedBand == .normal {
            // A new pipe's forward buffer is PIPE_SIZE; 64 KiB writes grow it to BIG_PIPE_SIZE.
            #expect(r.bufferSizeAtCreation == r.pipeSize)
            #expect(r.bufferSizesSeen.contains(r.bigPipeSize))
            #expect(r.countersAfter.resizes > before.resizes)
        } else {
            // Above 1/2: SMALL_PIPE_SIZE, and no growth.
            #expect(r.bufferSizeAtCreation == r.smallPipeSize)
            #expect(r.bufferSizesSeen == [r.smallPipeSize])
            #expect(r.bufferSizeAtEnd == r.smallPipeSize)
            #expect(r.countersAfter.resizes == before.resizes)
        }
        #expect(r.countersAfter.pipeallocfail == 0 && r.countersAfter.piperesizefail == 0)
        #expect(r.countersAfter.pipefragretry == 0)
        // The workload pipe is gone again; the ballast is still there.
        #expect(r.countersAfter.pipes == r.ballastPipes)
        #expect(r.countersAfter.pipekva == before.pipekva)
        #expect(r.engineMessages.isEmpty)
    }

    /// Tier 100: the ballast fills the arena until pipe2 fails; the workload pipe cannot be
    /// made and that is the result, with ENOMEM said in words — not an error.
    @Test(arguments: [0, 2])
    func exhaustedTierReportsENOMEM(queued: Int) throws {
        let r = try KVAPressureWorkload.run(Self.config(tier: 100, queued: queued))
        print("tier 100: \(r.workloadError ?? "-"); counters \(r.countersAfter)")
        #expect(r.exhausted && r.band == .exhausted)
        #expect(r.stream == nil && r.bytesPerSecond == 0)
        let error = try #require(r.workloadError)
        #expect(error.contains("ENOMEM") && error.contains("maxpipekva"))
        // Full to within less than one pipe pair; one failure for the ballast's last pipe2
        // and one for the workload's.
        #expect(r.countersBefore.pipekva > r.maxpipekva - 2 * r.smallPipeSize)
        #expect(r.countersBefore.pipeallocfail >= 1)
        #expect(r.countersAfter.pipeallocfail == r.countersBefore.pipeallocfail + 1)
        #expect(r.engineMessages.contains { $0.contains("kern.ipc.maxpipekva exceeded") })
    }

    @Test func runnerRecordsTheExhaustedTierAsZero() throws {
        let runner = Runner(warmupRepetitions: 0, repetitions: 1, probe: Runner.Probe(cpuA: 0, cpuB: 0, roundTrips: 200),
                            captureEnvironment: false)
        let report = try runner.run([
            RunConfiguration(name: "tier-75", workload: .kvaPressure(Self.config(tier: 75))),
            RunConfiguration(name: "tier-100", workload: .kvaPressure(Self.config(tier: 100))),
        ])
        #expect(report.configurations[0].repetitions[0].value > 0)
        #expect(report.configurations[0].repetitions[0].kvaPressure?.band == .aboveThreeQuarters)
        #expect(report.configurations[1].repetitions[0].value == 0)
        #expect(report.configurations[1].repetitions[0].kvaPressure?.exhausted == true)
    }

    @Test func badKVAConfigurationsAreRefused() throws {
        var c = Self.config(tier: 50)
        c.stream.transport = .linuxPipe
        #expect(throws: HarnessError.self) { _ = try KVAPressureWorkload.run(c) }
        #expect(throws: HarnessError.self) { _ = try KVAPressureWorkload.run(Self.config(tier: 101)) }
        #expect(throws: HarnessError.self) { _ = try KVAPressureWorkload.run(Self.config(tier: -1)) }
        #expect(throws: HarnessError.self) { _ = try KVAPressureWorkload.run(Self.config(tier: 50, queued: 4096)) }
    }
}
