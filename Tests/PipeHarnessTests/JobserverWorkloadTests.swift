import Testing
@testable import PipeHarness

/// The jobserver's accounting: every take counted once, every token back in the pipe, a
/// wait recorded for every take.
@Suite(.serialized) struct JobserverWorkloadTests {
    @Test(arguments: JobserverConfig.transports)
    func everyTokenIsTakenCountedAndReturned(transport: TransportKind) throws {
        let config = JobserverConfig(transport: transport, workers: 5, tokens: 3, workNs: 2_000, takes: 3000, verify: true)
        let m = try JobserverWorkload.run(config)
        let r = m.result
        #expect(r.tokenError == nil, "\(r.tokenError ?? "")")
        #expect(r.integrityOK)
        #expect(r.perWorkerTakes.count == 5)
        #expect(r.perWorkerTakes.reduce(0, +) == 3000)
        #expect(m.tokenWait.totalCount == 3000)
        #expect(r.tokenWait.count == 3000)
        #expect(r.workMeasuredNs >= 2_000)   // busy on the clock: never shorter than asked
        if let f = r.fairness { #expect(f >= 1) }
        #expect(r.handoffsPerSecond > 0)
    }

    /// No work at all: the hand-off alone, one token, one worker — the degenerate pool.
    @Test func oneWorkerOneTokenTakesThemAll() throws {
        let r = try JobserverWorkload.run(JobserverConfig(transport: .engine, workers: 1, tokens: 1, workNs: 0, takes: 500, verify: true)).result
        #expect(r.perWorkerTakes == [500])
        #expect(r.fairness == 1)
        #expect(r.workMeasuredNs == 0)
        #expect(r.integrityOK)
    }

    @Test func outOfRangeConfigurationsAreRefused() {
        for bad in [
            JobserverConfig(transport: .unixSocket, workers: 2, tokens: 1, workNs: 0, takes: 1),
            JobserverConfig(transport: .engine, workers: 0, tokens: 1, workNs: 0, takes: 1),
            JobserverConfig(transport: .engine, workers: 2, tokens: 257, workNs: 0, takes: 1),
            JobserverConfig(transport: .engine, workers: 2, tokens: 1, workNs: -1, takes: 1),
            JobserverConfig(transport: .engine, workers: 2, tokens: 1, workNs: 0, takes: 0),
        ] {
            #expect(throws: HarnessError.self) { try JobserverWorkload.run(bad) }
        }
    }
}
