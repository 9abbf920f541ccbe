import Testing
@testable import PipeHarness

@Suite(.serialized) struct FanInWorkloadTests {
    static let sides: [(TransportKind, FanInMux)] = [(.engine, .poll), (.engine, .kqueue), (.linuxPipe, .poll)]

    /// Four writers into one multiplexing reader, odd sizes so that reads and writes straddle
    /// each other; every byte of every writer checked, and every byte counted.
    @Test(arguments: sides)
    func verifiedFanInDeliversEveryByteOfEveryWriter(side: (TransportKind, FanInMux)) throws {
        let (transport, mux) = side
        let config = FanInConfig(
            transport: transport, writers: 4, bytesPerWriter: (192 << 10) + 7, writeSize: 5000,
            readSize: 3001, mux: mux, verify: true)
        let r = try FanInWorkload.run(config)
        #expect(r.integrityOK)
        #expect(r.mismatches.isEmpty)
        #expect(r.perWriterBytes == [Int](repeating: config.bytesPerWriter, count: 4))
        #expect(r.bytesReceived == 4 * config.bytesPerWriter)
        #expect(r.mux == mux.rawValue && r.transport == transport.rawValue)
        #expect(r.muxCalls > 0 && r.readyEvents >= 4)
        // At least one read per 3001 bytes of each pipe.
        #expect(r.readCalls >= 4 * ((config.bytesPerWriter + 3000) / 3001))
        #expect(r.writeCalls >= 4 * ((config.bytesPerWriter + 4999) / 5000))
        #expect(r.writerCPUNs.count == 4 && r.writerCPUsSeen.count == 4)
        #expect(r.totalCPUNs == r.readerCPUNs + r.writerCPUNs.reduce(0, +))
        #expect(r.wallNs > 0 && r.aggregateBytesPerSecond > 0)
        #expect(r.perWriterBytesPerSecond.count == 4 && r.perWriterBytesPerSecond.allSatisfy { $0 > 0 })
        if transport == .engine {
            let counters = try #require(r.engineCounters)
            #expect(counters.pipes == 0, "every engine pipe closed at the end")
        } else {
            #expect(r.engineCounters == nil)
        }
    }

    /// A single writer, and writes larger than the engine's pipe_mindirect (direct path).
    @Test(arguments: [FanInMux.poll, .kqueue])
    func directWritesAndOneWriter(mux: FanInMux) throws {
        for writers in [1, 3] {
            let r = try FanInWorkload.run(FanInConfig(
                transport: .engine, writers: writers, bytesPerWriter: 1 << 20, writeSize: 64 << 10,
                readSize: 16 << 10, mux: mux, verify: true))
            #expect(r.integrityOK, "\(writers) writers, \(mux)")
        }
    }

    @Test func runnerRunsFanIn() throws {
        let runner = Runner(warmupRepetitions: 0, repetitions: 2, probe: Runner.Probe(cpuA: 0, cpuB: 0, roundTrips: 200),
                            captureEnvironment: false)
        let report = try runner.run([
            RunConfiguration(name: "fanin-kq", workload: .fanin(FanInConfig(transport: .engine, writers: 3, bytesPerWriter: 128 << 10, mux: .kqueue, verify: true))),
            RunConfiguration(name: "fanin-linux", workload: .fanin(FanInConfig(transport: .linuxPipe, writers: 3, bytesPerWriter: 128 << 10, verify: true))),
        ])
        for c in report.configurations {
            #expect(c.metric == "aggregate throughput" && c.unit == "B/s" && c.higherIsBetter)
            #expect(c.repetitions.allSatisfy { $0.fanin?.integrityOK == true && $0.value == $0.fanin?.aggregateBytesPerSecond })
        }
    }

    @Test func badFanInConfigurationsAreRefused() throws {
        let bad: [FanInConfig] = [
            FanInConfig(transport: .linuxPipe, writers: 2, bytesPerWriter: 1024, mux: .kqueue),
            FanInConfig(transport: .spscRing, writers: 2, bytesPerWriter: 1024),
            FanInConfig(transport: .engine, writers: 0, bytesPerWriter: 1024),
            FanInConfig(transport: .engine, writers: 2, bytesPerWriter: 0),
        ]
        for c in bad {
            #expect(throws: HarnessError.self) { _ = try FanInWorkload.run(c) }
        }
    }
}
