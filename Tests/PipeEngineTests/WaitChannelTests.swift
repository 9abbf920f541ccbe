import Foundation
import Glibc
import Testing
@testable import PipeEngine

@Suite("msleep: each kind of wait (wmesg) learns its own spin estimate")
struct WaitChannelTests {
    /// A reader's wait for data and a writer's wait for space sleep on the same channel
    /// (`&cpipe`) but last very differently; a long wait of one kind must not move the other's
    /// estimate (a shared estimate made the writer's 20 µs waits park at 64-byte writes).
    @Test func readerAndWriterWaitsKeepSeparateEstimates() throws {
        let sys = try quietSystem()     // default wait strategy: adaptive spin, then park
        let (r, w) = try sys.pipe2()
        let pipe = try #require(sys.pipeForTesting(r))
        #expect(pipe.chan.spinEstimateNanoseconds(.piperd) == 0)
        #expect(pipe.chan.spinEstimateNanoseconds(.pipewr) == 0)

        // A reader waits for data longer than it spins ("piperd").
        let got = Locked<[UInt8]>([])
        let reader = TestThread { let bytes = try! sys.read(r, count: 1); got.withLock { $0 = bytes } }
        try #require(waitForSleeper(pipe, .WANTR, parked: true))   // spun, failed, parked
        _ = try sys.write(w, [42])
        #expect(reader.join())
        #expect(got.get == [42])
        let readWait = pipe.chan.spinEstimateNanoseconds(.piperd)
        #expect(readWait > 0)                                       // the failed spin moved it
        #expect(pipe.chan.spinEstimateNanoseconds(.pipewr) == 0)    // the writer's did not

        // A writer waits for space longer than it spins ("pipewr"): fill the buffer without
        // blocking, then a 100-byte write (atomic: at most PIPE_BUF) must wait for room.
        _ = try sys.fcntl(w, F_SETFL, O_NONBLOCK)
        var filled = 0
        while let n = try? sys.write(w, [UInt8](repeating: 1, count: 100)) { filled += n }
        _ = try sys.fcntl(w, F_SETFL, 0)
        let wrote = Locked<Int>(0)
        let writer = TestThread { let n = try! sys.write(w, [UInt8](repeating: 2, count: 100)); wrote.withLock { $0 = n } }
        try #require(waitForSleeper(pipe, .WANTW, parked: true))
        #expect(wrote.get == 0)
        var drained = 0
        while drained < filled { drained += try sys.read(r, count: filled - drained).count }
        #expect(writer.join())
        #expect(wrote.get == 100)
        #expect(pipe.chan.spinEstimateNanoseconds(.pipewr) > 0)
        #expect(pipe.chan.spinEstimateNanoseconds(.piperd) == readWait)
        #expect(try sys.read(r, count: 200) == [UInt8](repeating: 2, count: 100))
    }
}
