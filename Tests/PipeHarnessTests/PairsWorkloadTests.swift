import Testing
@testable import PipeHarness

@Suite(.serialized) struct PairsWorkloadTests {
    /// Three pairs at once over every channel transport, every byte of every pair checked.
    @Test(arguments: allChannels)
    func threeVerifiedPairsArriveIntact(kind: TransportKind) throws {
        let config = PairsConfig(
            transport: kind, options: TransportOptions(ringCapacity: 16 * 1024), pairs: 3,
            bytesPerPair: (256 << 10) + 5, writeSize: 5000, readSize: 3001, verify: true)
        let r = try PairsWorkload.run(config)
        #expect(r.integrityOK)
        #expect(r.perPair.count == 3)
        #expect(r.totalBytes == 3 * config.bytesPerPair)
        #expect(r.perPair.allSatisfy { $0.bytesReceived == config.bytesPerPair && $0.integrityOK })
        #expect(r.wallNs > 0 && r.aggregateBytesPerSecond > 0)
        #expect(r.minPairBytesPerSecond <= r.maxPairBytesPerSecond)
        // The aggregate wall spans every pair's own.
        #expect(r.perPair.allSatisfy { $0.wallNs <= r.wallNs })
        #expect(r.totalCPUNs == r.perPair.reduce(0) { $0 + $1.writerCPUNs + $1.readerCPUNs })
        if kind == .engine {
            // One simulated kernel for all pairs; every pipe closed again at the end.
            let counters = try #require(r.engineCounters)
            #expect(r.sharedEngineSystem)
            #expect(counters.pipes == 0 && counters.pipekva == 0)
            #expect(r.arenaMemory != nil)
        } else {
            #expect(r.engineCounters == nil)
        }
    }

    @Test func enginePairsInSeparateSystems() throws {
        let r = try PairsWorkload.run(PairsConfig(
            transport: .engine, pairs: 2, bytesPerPair: 128 << 10, verify: true, sharedEngineSystem: false))
        #expect(r.integrityOK && !r.sharedEngineSystem && r.engineCounters == nil)
        #expect(r.perPair.allSatisfy { $0.arenaMemory != nil })
    }

    /// Pairs pinned round-robin over the usable CPUs run where they were put.
    @Test func spreadPlacementsArePinned() throws {
        let cpus = Topology.current().usableCPUs
        let placements = Placement.spread(pairs: 3, over: cpus)
        #expect(placements.count == 3)
        let r = try PairsWorkload.run(PairsConfig(
            transport: .linuxPipe, pairs: 3, bytesPerPair: 256 << 10, verify: true, placements: placements))
        for (p, s) in zip(placements, r.perPair) {
            #expect(s.writerCPUsSeen == [p.writerCPU!, p.writerCPU!])
            #expect(s.readerCPUsSeen == [p.readerCPU!, p.readerCPU!])
            #expect(s.placement == p)
        }
    }

    @Test func badPairsConfigurationsAreRefused() throws {
        #expect(throws: HarnessError.self) { _ = try PairsWorkload.run(PairsConfig(transport: .memcpy, pairs: 2, bytesPerPair: 1024)) }
        #expect(throws: HarnessError.self) { _ = try PairsWorkload.run(PairsConfig(transport: .linuxPipe, pairs: 0, bytesPerPair: 1024)) }
        #expect(throws: HarnessError.self) {
            _ = try PairsWorkload.run(PairsConfig(transport: .linuxPipe, pairs: 3, bytesPerPair: 1024, placements: [Placement()]))
        }
        // A pair that cannot be pinned stops the whole run, naming the pair, before any thread starts.
        let missing = (Topology.current().usableCPUs.max() ?? 0) + 7
        do {
            _ = try PairsWorkload.run(PairsConfig(
                transport: .linuxPipe, pairs: 2, bytesPerPair: 1024,
                placements: [Placement(), Placement(readerCPU: missing)]))
            Issue.record("not refused")
        } catch let e as HarnessError {
            #expect(e.description.contains("pair 1"))
            #expect(e.description.contains("reader CPU \(missing)"))
        }
    }

    @Test func runnerRunsPairs() throws {
        let runner = Runner(warmupRepetitions: 0, repetitions: 2, probe: Runner.Probe(cpuA: 0, cpuB: 0, roundTrips: 200),
                            captureEnvironment: false)
        let report = try runner.run([
            RunConfiguration(name: "pairs-2", workload: .pairs(PairsConfig(transport: .unixSocket, pairs: 2, bytesPerPair: 128 << 10, verify: true))),
        ])
        let c = try #require(report.configurations.first)
        #expect(c.metric == "aggregate throughput" && c.unit == "B/s" && c.higherIsBetter)
        #expect(c.repetitions.allSatisfy { $0.pairs?.integrityOK == true && $0.value == $0.pairs?.aggregateBytesPerSecond })
    }
}
