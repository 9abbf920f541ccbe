import PipeEngine
import Testing
@testable import PipeHarness

/// The readiness interface the fan-in's reader uses: which channels are ready, an empty
/// channel told from its end, and the sets that cannot be built.
@Suite struct ReadinessSetTests {
    static func engineChannels(_ k: Int) throws -> [EngineChannel] {
        let system = try PipeSystem(PipeConfiguration())
        return try (0..<k).map { try EngineChannel(system: system, what: "test pipe \($0)") }
    }

    static func kernelChannels(_ k: Int) throws -> [KernelPipeChannel] {
        try (0..<k).map { try KernelPipeChannel(what: "test pipe \($0)") }
    }

    /// One byte into channel 1 of 3: the set names channel 1 alone; channel 0, empty, reads
    /// nil (EAGAIN), not 0; after its write end closes, channel 0 is ready and reads 0 (EOF).
    func readyAndEmptyAndEnd(_ channels: [PollableChannel], mux: ReadinessMux) throws {
        let set = try makeReadinessSet(channels, mux: mux)
        var byte: UInt8 = 7
        #expect(try channels[1].write(&byte, 1) == 1)
        var ready: [Int] = []
        #expect(try set.wait(&ready) == 1)
        #expect(ready == [1])
        var got: UInt8 = 0
        #expect(try channels[1].readIfReady(&got, 1) == 1 && got == 7)
        #expect(try channels[0].readIfReady(&got, 1) == nil)
        channels[0].closeWriteEnd()
        #expect(try set.wait(&ready) == 1)
        #expect(ready == [0])
        #expect(try channels[0].readIfReady(&got, 1) == 0)
        set.remove(0)
        channels[0].closeReadEnd()
        channels[2].closeWriteEnd()
        #expect(try set.wait(&ready) == 1)
        #expect(ready == [2])
        for i in 1...2 { channels[i].closeReadEnd(); channels[i].closeWriteEnd() }
    }

    @Test(arguments: ReadinessMux.allCases)
    func engineChannelsOfOneSystem(mux: ReadinessMux) throws {
        try readyAndEmptyAndEnd(try Self.engineChannels(3), mux: mux)
    }

    @Test func kernelPipesWithPoll() throws {
        try readyAndEmptyAndEnd(try Self.kernelChannels(3), mux: .poll)
    }

    @Test func setsThatCannotBeBuiltAreRefused() throws {
        #expect(throws: HarnessError.self) { _ = try makeReadinessSet(try Self.kernelChannels(2), mux: .kqueue) }
        let mixed: [PollableChannel] = [try Self.engineChannels(1)[0], try Self.kernelChannels(1)[0]]
        #expect(throws: HarnessError.self) { _ = try makeReadinessSet(mixed, mux: .poll) }
        let twoSystems = [try Self.engineChannels(1)[0], try Self.engineChannels(1)[0]]
        #expect(throws: HarnessError.self) { _ = try makeReadinessSet(twoSystems, mux: .poll) }
    }
}
