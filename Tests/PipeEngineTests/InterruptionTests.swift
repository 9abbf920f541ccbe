import Foundation
import Glibc
import Testing
@testable import PipeEngine

@Suite("interruptions: msleep with PCATCH, SA_RESTART, alarm, pipe_clone_write_buffer")
struct InterruptionTests {
    @Test func interruptedReadWithNoDataIsEINTR() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let result = Locked<Errno?>(nil)
        let reader = TestThread {
            do { _ = try sys.read(r, count: 10) } catch { result.withLock { $0 = error as? Errno } }
        }
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTR))
        reader.engineThread!.interrupt()
        #expect(reader.join())
        #expect(result.get == .interrupted)
        // Nothing is lost: data written afterwards is read normally.
        _ = try sys.write(w, [1, 2, 3])
        #expect(try sys.read(r, count: 10) == [1, 2, 3])
    }

    @Test func restartingInterruptionRestartsTheRead() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let got = Locked<[UInt8]?>(nil)
        let reader = TestThread { let value = try! sys.read(r, count: 10); got.withLock { $0 = value } }
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTR))
        reader.engineThread!.interrupt(restart: true)
        usleep(20_000)
        #expect(got.get == nil)                  // restarted, asleep again
        _ = try sys.write(w, [4, 5])
        #expect(reader.join())
        #expect(got.get == [4, 5])
    }

    @Test func alarmInterruptsABlockedRead() throws {
        let sys = try quietSystem()
        let (r, _) = try sys.pipe2()
        let me = EngineThread.current
        let before = me.deliveredCount(of: .SIGALRM)
        me.alarm(afterNanoseconds: 20_000_000)
        expectErrno(.interrupted) { try sys.read(r, count: 1) }
        #expect(me.deliveredCount(of: .SIGALRM) == before + 1)
        // A cancelled alarm never fires, not even past its deadline. The deadline is far enough
        // (100 ms, scaled under a sanitizer) that a loaded machine cannot reach it before the
        // cancel; a fired alarm left pending would interrupt a later test on this thread.
        let deadline = 100_000_000 * Int(TestThread.timeScale)
        let alarm = me.alarm(afterNanoseconds: deadline)
        alarm.cancel()
        try sys.fcntl(r, F_SETFL, O_NONBLOCK)
        usleep(UInt32(2 * deadline / 1000))
        expectErrno(.wouldBlock) { try sys.read(r, count: 1) }
        #expect(me.deliveredCount(of: .SIGALRM) == before + 1)
    }

    /// A buffered writer interrupted after some bytes moved returns the short count.
    @Test func interruptedBufferedWriteReturnsShortCount() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false
        config.pipeMindirect = 1 << 30
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let n = Locked<Int?>(nil)
        let writer = TestThread { let value = try! sys.write(w, pattern(0..<40_000)); n.withLock { $0 = value } }
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTW))
        writer.engineThread!.interrupt()
        #expect(writer.join())
        #expect(n.get == 16384)
        #expect(try sys.readExactly(r, 16384) == pattern(0..<16384))
        #expect(try sys.bytesReadable(r) == 0)
    }

    /// An interrupted direct write clones the unread rest of its chunk into the buffer and
    /// returns a count that includes it: nothing lost, nothing twice.
    @Test func interruptedDirectWriteClonesTheRest() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let data = pattern(0..<200_000, seed: 21)
        let n = Locked<Int?>(nil)
        let writer = TestThread {
            let value = try! data.withUnsafeBytes { try sys.write(w, $0.baseAddress, $0.count) }
            n.withLock { $0 = value }
        }
        while try sys.bytesReadable(r) == 0 { usleep(200) }
        let head = try sys.read(r, count: 5000)          // 5000 of the 64K chunk consumed
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTW))
        writer.engineThread!.interrupt()
        #expect(writer.join())
        #expect(n.get == 65536)                          // the whole held chunk
        #expect(try sys.sysctl("engine.clone_writes") == 1)
        #expect(try sys.bytesReadable(r) == 65536 - 5000) // the rest now sits in the buffer
        #expect(sys.heldPages == 0)
        let rest = try sys.readExactly(r, 65536 - 5000)
        #expect(head + rest == Array(data[0..<65536]))
    }

    /// An interrupted direct write whose memory another thread unmapped while it slept: the
    /// clone (a guarded copy, as the reader's) keeps what it could read, up to the first
    /// unmapped page, and the write is EFAULT; the reader gets exactly those bytes, once.
    @Test func cloneOfUnmappedMemoryKeepsWhatArrived() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let chunk = 65536, page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let region = mmap(nil, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        try #require(region != MAP_FAILED)
        let bytes = region.bindMemory(to: UInt8.self, capacity: chunk)
        for i in 0..<chunk { bytes[i] = patternByte(i, seed: 23) }
        defer { munmap(region, 4 * page) }
        let address = Int(bitPattern: region)
        let failure = Locked<Errno?>(nil)
        let writer = TestThread {
            do { _ = try sys.write(w, UnsafeRawPointer(bitPattern: address)!, chunk) } catch {
                failure.withLock { $0 = error as? Errno }
            }
        }
        while try sys.bytesReadable(r) == 0 { usleep(200) }
        let head = try sys.read(r, count: 5000)
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTW))
        munmap(region + 4 * page, chunk - 4 * page)          // as another thread of the writer
        writer.engineThread!.interrupt()
        #expect(writer.join())
        #expect(failure.get == .badAddress)
        #expect(try sys.sysctl("engine.clone_writes") == 1)
        #expect(try sys.bytesReadable(r) == 4 * page - 5000)
        let rest = try sys.readExactly(r, 4 * page - 5000)
        #expect(head + rest == pattern(0..<(4 * page), seed: 23))
        #expect(try sys.bytesReadable(r) == 0)
        #expect(sys.heldPages == 0)
    }

    /// Thousands of randomly timed interruptions of large blocking writes (direct and
    /// buffered), restarting and not: every byte arrives exactly once, in order. The writer
    /// goes on until it has sent 48 MiB *and* a thousand interruptions were sent, so a fast
    /// writer or a slow interrupter (a loaded machine) cannot end the test before its point.
    @Test func randomInterruptionsLoseNothing() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let atLeast = 48 * 1024 * 1024
        let interruptionsWanted = 1000
        let source = pattern(0..<(1 << 20), seed: 33)     // the stream repeats every MiB
        let writerDone = Locked(false)
        let interrupted = Locked(0)
        let signals = Locked(0)
        let sentTotal = Locked(0)
        let writer = TestThread {
            var sent = 0
            var rng = SystemRandomNumberGenerator()
            source.withUnsafeBytes { src in
                while sent < atLeast || signals.get < interruptionsWanted {
                    let offset = sent % (1 << 20)
                    let size = min((1 << 20) - offset, Int.random(in: 1...300_000, using: &rng))
                    do {
                        sent += try sys.write(w, src.baseAddress! + offset, size)
                    } catch {
                        precondition(error as? Errno == .interrupted, "unexpected \(error)")
                        interrupted.withLock { $0 += 1 }
                    }
                }
            }
            sentTotal.withLock { $0 = sent }
            writerDone.withLock { $0 = true }
            try! sys.close(w)
        }
        let target = writer.engineThread!
        let interrupter = TestThread {
            var rng = SystemRandomNumberGenerator()
            while !writerDone.get {
                usleep(UInt32.random(in: 0...150, using: &rng))
                target.interrupt(restart: Bool.random(using: &rng))
                signals.withLock { $0 += 1 }
            }
        }
        var received = 0
        var mismatches = 0
        var buffer = [UInt8](repeating: 0, count: 100_000)
        var rng = SystemRandomNumberGenerator()
        while true {                                        // to end of file: the writer closed
            let want = Int.random(in: 1...buffer.count, using: &rng)
            let n = try buffer.withUnsafeMutableBytes { try sys.read(r, $0.baseAddress, want) }
            if n == 0 { break }
            for i in 0..<n where buffer[i] != source[(received + i) % (1 << 20)] { mismatches += 1 }
            received += n
        }
        #expect(writer.join(timeout: 120))
        #expect(interrupter.join())
        #expect(mismatches == 0)
        #expect(received == sentTotal.get)
        #expect(received >= atLeast)
        #expect(signals.get >= interruptionsWanted)
        #expect(sys.heldPages == 0)
        print("interruptions sent: \(signals.get), EINTR returns: \(interrupted.get), "
              + "clones: \((try? sys.sysctl("engine.clone_writes")) ?? -1)")
    }
}
