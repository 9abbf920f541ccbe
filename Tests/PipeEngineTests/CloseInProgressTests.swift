import Foundation
import Glibc
import Testing
@testable import PipeEngine

/// `close` against a call in progress on the same file, as FreeBSD has it: the call keeps
/// its file (its reference), so the pipe end is shut down only when the call returns; a close
/// never waits for a call, sleeping or not; and a call made from inside another one (a signal
/// handler) is safe. `StressTests.lockFreeFgetRacesCloseAndDescriptorReuse` races calls
/// against closes and descriptor reuse.
@Suite("close against calls in progress")
struct CloseInProgressTests {
    /// A reader asleep on its descriptor holds its file: `close` from another thread returns at
    /// once, and the sleeping read still gets the next byte through that file.
    @Test func closeDoesNotWaitForASleepingCallWhichKeepsItsFile() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let got = Locked<[Int]>([])
        let reader = TestThread {
            var byte: UInt8 = 0
            let n = (try? sys.read(r, &byte, 1)) ?? -1
            got.withLock { $0 = [n, Int(byte)] }
        }
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTR))
        let closer = TestThread { try? sys.close(r) }
        // A close that waited for the sleeping call would never return.
        #expect(closer.join(timeout: 10))
        #expect(sys.openDescriptors == 1)
        #expect(throws: Errno.badFileDescriptor) { var b: UInt8 = 0; _ = try sys.read(r, &b, 1) }

        var byte: UInt8 = 42
        #expect(try sys.write(w, &byte, 1) == 1)
        try #require(reader.join(timeout: 10))
        #expect(got.get == [1, 42])

        try sys.close(w)
        #expect(try sys.sysctl("engine.pipes") == 0)
        #expect(sys.pipekva == 0)
    }

    /// A SIGPIPE handler runs inside the failing write's call: it writes to another pipe (a
    /// call inside a call) and closes the very descriptor the outer call uses. The outer call
    /// finishes on its file, which goes when it returns.
    @Test func aSignalHandlerMayCallInAndCloseTheDescriptorOfItsCall() throws {
        let inside = Locked<(PipeSystem, Int32, Int32)?>(nil)
        let results = Locked<[String]>([])
        let sys = try PipeSystem(signalHandler: { signal, _ in
            guard signal == .SIGPIPE, let (sys, w, otherW) = inside.get else { return }
            var byte: UInt8 = 9
            let wrote = (try? sys.write(otherW, &byte, 1)) ?? -1
            let closed = (try? sys.close(w)) != nil
            // The outer call still holds w's file: its pipe is not freed until it returns.
            let pipes = (try? sys.sysctl("engine.pipes")) ?? -1
            results.withLock { $0.append("inner write \(wrote), close \(closed), pipes \(pipes)") }
        }, log: { _ in })
        let (r, w) = try sys.pipe2()
        let (otherR, otherW) = try sys.pipe2()
        inside.withLock { $0 = (sys, w, otherW) }
        try sys.close(r)

        // On a thread of its own: a close that waited for its own call would hang.
        let outer = Locked<Errno?>(nil)
        let writer = TestThread {
            var byte: UInt8 = 1
            do throws(Errno) { _ = try sys.write(w, &byte, 1) } catch { outer.withLock { $0 = error } }
        }
        try #require(writer.join(timeout: 10))
        #expect(outer.get == .brokenPipe)
        #expect(results.get == ["inner write 1, close true, pipes 2"])
        #expect(try sys.sysctl("engine.pipes") == 1)
        #expect(sys.openDescriptors == 2)
        var got: UInt8 = 0
        #expect(try sys.read(otherR, &got, 1) == 1)
        #expect(got == 9)

        inside.withLock { $0 = nil }
        try sys.close(otherR)
        try sys.close(otherW)
        #expect(try sys.sysctl("engine.pipes") == 0)
        #expect(sys.pipekva == 0)
    }
}
