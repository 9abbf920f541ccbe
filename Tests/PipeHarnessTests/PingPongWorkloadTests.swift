import Testing
@testable import PipeHarness

@Suite(.serialized) struct PingPongWorkloadTests {
    /// Verified round trips over every channel transport: 256 × 4 KiB = 1 MiB each way.
    @Test(arguments: allChannels)
    func verifiedPingPongEchoesIntact(kind: TransportKind) throws {
        let config = PingPongConfig(
            transport: kind, messageSize: 4096, iterations: 256, warmupIterations: 16, verify: true)
        let m = try PingPongWorkload.run(config)
        let r = m.result
        #expect(r.firstMismatch == nil && r.integrityOK)
        #expect(r.latency.count == 256)
        #expect(m.histogram.totalCount == 256)
        #expect(r.latency.min <= r.latency.p50 && r.latency.p50 <= r.latency.p99 && r.latency.p99 <= r.latency.max)
        #expect(r.latency.p9999 <= r.latency.max)
        #expect(r.lateSends == 0)
    }

    @Test func oneByteMessages() throws {
        let r = try PingPongWorkload.run(PingPongConfig(transport: .unixSocket, messageSize: 1, iterations: 500, verify: true)).result
        #expect(r.integrityOK && r.latency.count == 500)
    }

    /// Fixed rate: latency runs from the intended send time, so the recorded wall time must
    /// span the schedule, and every round trip is still recorded.
    @Test func fixedRateKeepsTheSchedule() throws {
        let config = PingPongConfig(
            transport: .linuxPipe, messageSize: 64, iterations: 200, warmupIterations: 10,
            verify: true, ratePerSecond: 20_000)   // one send every 50 µs: 10 ms in all
        let r = try PingPongWorkload.run(config).result
        #expect(r.integrityOK)
        #expect(r.latency.count == 200)
        #expect(r.wallNs >= 199 * 50_000)
        #expect(r.ratePerSecond == 20_000)
    }

    /// At a rate the transport cannot keep, sends fall behind and are counted; their latency
    /// includes the time they waited (so it keeps growing instead of staying at one round trip).
    @Test func overloadedFixedRateCountsLateSends() throws {
        let config = PingPongConfig(
            transport: .linuxPipe, messageSize: 64, iterations: 200, warmupIterations: 0,
            ratePerSecond: 1e9)   // a send every nanosecond
        let r = try PingPongWorkload.run(config).result
        #expect(r.lateSends > 100)
        #expect(r.latency.max >= r.latency.min)
    }

    @Test func corruptedEchoIsReported() throws {
        let config = PingPongConfig(transport: .linuxPipe, messageSize: 100, iterations: 50, warmupIterations: 0, verify: true)
        let ping = try makeChannel(.linuxPipe, config.options)
        let pong = CorruptingChannel(try makeChannel(.linuxPipe, config.options), corruptOffset: 1234)
        let r = try PingPongWorkload.run(config, ping: ping, pong: pong).result
        #expect(r.firstMismatch?.offset == 1234)
        #expect(!r.integrityOK)
    }

    @Test func invalidConfigurationsAreRejected() {
        #expect(throws: HarnessError.self) { try PingPongWorkload.run(PingPongConfig(transport: .memcpy)) }
        #expect(throws: HarnessError.self) { try PingPongWorkload.run(PingPongConfig(transport: .linuxPipe, messageSize: 0)) }
        #expect(throws: HarnessError.self) { try PingPongWorkload.run(PingPongConfig(transport: .linuxPipe, ratePerSecond: 0)) }
    }
}
