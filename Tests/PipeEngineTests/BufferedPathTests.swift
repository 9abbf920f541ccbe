import Foundation
import Glibc
import CPipeSys
import Testing
@testable import PipeEngine

@Suite("pipe_read / pipe_write: the buffered path")
struct BufferedPathTests {
    /// Non-blocking writes and reads of awkward sizes keep the buffer wrapping around; every
    /// byte must come out in order, whichever way the writer's bytes are copied in (streaming
    /// stores for the long segments, cached ones for their unaligned heads and tails).
    @Test(arguments: CopyStrategy.allCases)
    func byteExactAcrossWraparound(copy: CopyStrategy) throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false              // stay at 16 KiB: wrap a lot
        config.copy = copy
        let sys = try quietSystem(config)
        #if arch(x86_64)
        #expect(try sys.sysctl("engine.copy") == CopyStrategy.allCases.firstIndex(of: copy)!)
        #endif
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        var written = 0, read = 0
        var rng = SystemRandomNumberGenerator()
        var wraps = 0
        while read < 2_000_000 {
            let want = Int.random(in: 1...7000, using: &rng)
            let chunk = pattern(written..<(written + want), seed: 3)
            do {
                written += try sys.write(w, chunk)
            } catch Errno.wouldBlock {
            }
            let k = try #require(try sys.kinfo(r).pipe)
            if k.kf_pipe_buffer_in < k.kf_pipe_buffer_out { wraps += 1 }
            let got = try sys.read(r, count: Int.random(in: 1...9000, using: &rng))
            #expect(got == pattern(read..<(read + got.count), seed: 3))
            read += got.count
        }
        #expect(wraps > 10)
        #expect(try sys.bufferSize(r) == DEFAULT_PIPE_SIZE)
    }

    /// `pb_copy_streaming` (`CopyStrategy.streaming`) copies exactly, at every alignment of
    /// the destination and with heads and tails shorter than a line.
    @Test func streamingCopyIsExactAtEveryAlignment() {
        let src = pattern(0..<8192, seed: 9)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: 8192 + 128, alignment: 64)
        defer { dst.deallocate() }
        for offset in 0..<64 {
            for n in [0, 1, 63, 64, 65, 127, 1024, 4096 + 17, 8192 - 64] {
                memset(dst, 0xEE, 8192 + 128)
                src.withUnsafeBytes { pb_copy_streaming(dst + offset, $0.baseAddress!, n) }
                let out = UnsafeRawBufferPointer(start: dst, count: 8192 + 128)
                #expect(Array(out[offset..<(offset + n)]) == Array(src[0..<n]), "offset \(offset), \(n) bytes")
                #expect(out[0..<offset].allSatisfy { $0 == 0xEE } && out[(offset + n)...].allSatisfy { $0 == 0xEE },
                        "offset \(offset), \(n) bytes: wrote outside")
            }
        }
    }

    /// `pipespace_new` linearises the circular buffer when it grows.
    @Test func growthLinearisesWrappedData() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        // 10000 in, 9000 out: in=10000, out=9000; then 7000 more wraps (16384 buffer).
        _ = try sys.write(w, pattern(0..<10_000))
        #expect(try sys.read(r, count: 9_000) == pattern(0..<9_000))
        _ = try sys.write(w, pattern(10_000..<17_000))
        var k = try #require(try sys.kinfo(r).pipe)
        #expect(k.kf_pipe_buffer_size == 16384 && k.kf_pipe_buffer_in < k.kf_pipe_buffer_out)
        // 8000 queued + 30000 new > 32768: grows 16K -> 32K -> 64K, copying in two pieces.
        #expect(try sys.write(w, pattern(17_000..<47_000)) == 30_000)
        k = try #require(try sys.kinfo(r).pipe)
        #expect(k.kf_pipe_buffer_size == 65536)
        #expect(k.kf_pipe_buffer_cnt == 38_000)
        #expect(try sys.readExactly(r, 38_000) == pattern(9_000..<47_000))
        #expect(try sys.sysctl("engine.resizes") == 1)
        #expect(sys.pipekva == 65536 + 4096)
    }

    /// Writes of at most PIPE_BUF bytes are never split, whatever the other writers do.
    @Test func pipeBufWritesNeverInterleave() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let writers = 4, records = 3000
        var threads: [TestThread] = []
        for id in 0..<writers {
            threads.append(TestThread {
                var record = [UInt8](repeating: UInt8(id), count: PIPE_BUF)
                for seq in 0..<records {
                    record[1] = UInt8(truncatingIfNeeded: seq)
                    record[2] = UInt8(truncatingIfNeeded: seq >> 8)
                    let n = try! sys.write(w, record)
                    precondition(n == PIPE_BUF)
                }
            })
        }
        var bytes: [UInt8] = []
        let total = writers * records * PIPE_BUF
        while bytes.count < total {
            bytes += try sys.read(r, count: 3001)   // odd size: reads cut records anywhere
        }
        for t in threads { #expect(t.join()) }
        var next = [Int](repeating: 0, count: writers)
        for start in stride(from: 0, to: total, by: PIPE_BUF) {
            let record = bytes[start..<(start + PIPE_BUF)]
            let id = Int(record.first!)
            let seq = Int(record[start + 1]) | Int(record[start + 2]) << 8
            #expect(seq == next[id] & 0xFFFF)
            next[id] += 1
            #expect(record.enumerated().allSatisfy { i, b in i == 1 || i == 2 || b == UInt8(id) })
        }
        #expect(next == [Int](repeating: records, count: writers))
    }

    @Test func nonBlockingSmallWriteIsAllOrNothing() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        #expect(try sys.write(w, pattern(0..<(16384 - 100))) == 16384 - 100)
        // 200 <= PIPE_BUF bytes do not fit in 100: nothing is written.
        expectErrno(.wouldBlock) { try sys.write(w, pattern(0..<200)) }
        // 1000 > PIPE_BUF: the 100 that fit are written.
        #expect(try sys.write(w, pattern(0..<1000)) == 100)
        expectErrno(.wouldBlock) { try sys.write(w, pattern(0..<1000)) }
        #expect(try sys.bytesReadable(r) == 16384)
    }

    @Test func eofReturnsZeroAndWidowedWriteIsEPIPEWithSIGPIPE() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, pattern(0..<10))
        try sys.close(w)
        #expect(try sys.read(r, count: 100) == pattern(0..<10))
        #expect(try sys.read(r, count: 100).isEmpty)            // EOF
        #expect(try sys.read(r, count: 100).isEmpty)

        let (r2, w2) = try sys.pipe2()
        try sys.close(r2)
        let me = EngineThread.current
        let before = me.deliveredCount(of: .SIGPIPE)
        expectErrno(.brokenPipe) { try sys.write(w2, pattern(0..<10)) }
        expectErrno(.brokenPipe) { try sys.write(w2, nil, 0) }   // even a 0-byte write
        #expect(me.deliveredCount(of: .SIGPIPE) == before + 2)
        // The other direction of the widowed pipe is gone too: fd[1] reads EOF.
        #expect(try sys.read(w2, count: 1).isEmpty)
    }

    @Test func signalHandlerSeesSIGPIPE() throws {
        let seen = Locked<[Signal]>([])
        let sys = try PipeSystem(signalHandler: { signal, _ in seen.withLock { $0.append(signal) } },
                                 log: { _ in })
        let (r, w) = try sys.pipe2()
        try sys.close(r)
        expectErrno(.brokenPipe) { try sys.write(w, [1, 2, 3]) }
        #expect(seen.get == [.SIGPIPE])
    }

    /// A blocked writer whose reader goes away returns the short count, not EPIPE.
    @Test func shortCountInsteadOfEPIPEOnceBytesMoved() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false
        config.pipeMindirect = 1 << 30            // keep this a buffered write
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let result = Locked<Result<Int, Errno>?>(nil)
        let writer = TestThread {
            let data = pattern(0..<20_000)
            do {
                let n = try sys.write(w, data)
                result.withLock { $0 = .success(n) }
            } catch {
                result.withLock { $0 = .failure(error as! Errno) }
            }
        }
        while try sys.bytesReadable(r) < 16384 { usleep(1000) }
        try sys.close(r)
        #expect(writer.join())
        #expect(result.get == .success(16384))
        expectErrno(.brokenPipe) { try sys.write(w, [0]) }
    }

    /// MINPIPESIZE hysteresis: a writer waiting for space is woken only when the reader
    /// leaves fewer than PIPE_SIZE/3 bytes.
    @Test func writerWakesOnlyBelowMinPipeSize() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false
        config.pipeMindirect = 1 << 30
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let done = Locked(false)
        let writer = TestThread {
            _ = try! sys.write(w, pattern(0..<20_000))
            done.withLock { $0 = true }
        }
        while try sys.bytesReadable(r) < 16384 { usleep(1000) }
        #expect(try sys.read(r, count: 1000) == pattern(0..<1000))   // 15384 left >= 5461
        usleep(50_000)
        #expect(done.get == false)
        #expect(try sys.bytesReadable(r) == 15384)
        _ = try sys.readExactly(r, 11_000)                           // 4384 left < 5461
        #expect(writer.join())
        #expect(try sys.bytesReadable(r) == 4384 + 3616)
        #expect(try sys.readExactly(r, 8000) == pattern(12_000..<20_000))
    }

    /// A read at EOF must not call pipeselwakeup (no spurious wakeup): watched through the
    /// SIGIO that pipeselwakeup sends to a FIOASYNC owner.
    @Test func noSelWakeupOnEOFRead() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        var on: Int32 = 1
        try sys.ioctl(r, IoctlRequest.FIOASYNC, &on)
        var owner: Int32 = getpid()        // an owner must exist (fsetown)
        try sys.ioctl(r, IoctlRequest.FIOSETOWN, &owner)
        _ = try sys.write(w, pattern(0..<100))
        #expect(sys.sigioCount(owner: owner) == 1)  // data for fd[0]: pipeselwakeup(its pipe)
        _ = try sys.read(r, count: 100)
        #expect(sys.sigioCount(owner: owner) == 2)  // read freed space: pipeselwakeup(rpipe)
        try sys.close(w)                          // pipeclose wakes the peer: SIGIO
        let afterClose = sys.sigioCount(owner: owner)
        #expect(afterClose == 3)
        #expect(try sys.read(r, count: 100).isEmpty)
        #expect(try sys.read(r, count: 100).isEmpty)
        #expect(sys.sigioCount(owner: owner) == afterClose)
    }

    @Test func closingTheWriteEndWakesABlockedReader() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let got = Locked<[UInt8]?>(nil)
        let reader = TestThread { let value = try! sys.read(r, count: 10); got.withLock { $0 = value } }
        usleep(20_000)
        try sys.close(w)
        #expect(reader.join())
        #expect(got.get == [])
    }

    @Test func closingTheReadEndWakesABlockedWriter() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false
        config.pipeMindirect = 1 << 30
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, pattern(0..<16384))
        let result = Locked<Errno?>(nil)
        let writer = TestThread {
            do { _ = try sys.write(w, [1, 2, 3]) } catch { result.withLock { $0 = error as? Errno } }
        }
        usleep(20_000)
        try sys.close(r)
        #expect(writer.join())
        #expect(result.get == .brokenPipe)
        try sys.close(w)
        #expect(sys.pipekva == 0)
    }

    /// Closing the descriptor a reader is blocked on keeps the file open until that read
    /// returns (the reference fget took), as in FreeBSD.
    @Test func closingTheDescriptorUnderABlockedReader() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let got = Locked<[UInt8]?>(nil)
        let pipe = try #require(sys.pipeForTesting(r))
        let reader = TestThread { let value = try! sys.read(r, count: 10); got.withLock { $0 = value } }
        // The reader must be inside read (holding fget's reference) before the close.
        try #require(waitForSleeper(pipe, .WANTR))
        try sys.close(r)
        expectErrno(.badFileDescriptor) { try sys.read(r, count: 1) }
        _ = try sys.write(w, [7, 8, 9])            // the pipe is still open for the reader
        #expect(reader.join())
        #expect(got.get == [7, 8, 9])
        expectErrno(.brokenPipe) { try sys.write(w, [1]) }   // now it is gone
        try sys.close(w)
        #expect(sys.pipekva == 0)
    }

    @Test func vectoredIOGathersAndScatters() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let a = pattern(0..<100), b = pattern(100..<350), c = pattern(350..<351)
        let n = try a.withUnsafeBytes { pa in
            try b.withUnsafeBytes { pb in
                try c.withUnsafeBytes { pc in
                    var iov = [
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: pa.baseAddress), iov_len: 100),
                        iovec(iov_base: nil, iov_len: 0),
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: pb.baseAddress), iov_len: 250),
                        iovec(iov_base: UnsafeMutableRawPointer(mutating: pc.baseAddress), iov_len: 1),
                    ]
                    return try sys.writev(w, &iov, 4)
                }
            }
        }
        #expect(n == 351)
        var x = [UInt8](repeating: 0, count: 51), y = [UInt8](repeating: 0, count: 400)
        let m = try x.withUnsafeMutableBytes { px in
            try y.withUnsafeMutableBytes { py in
                var iov = [iovec(iov_base: px.baseAddress, iov_len: 51),
                           iovec(iov_base: py.baseAddress, iov_len: 400)]
                return try sys.readv(r, &iov, 2)
            }
        }
        #expect(m == 351)
        #expect(x + y[..<300] == pattern(0..<351))
    }

    /// Both directions at once, each with its own writer and reader thread.
    @Test func bidirectionalTrafficUnderLoad() throws {
        let sys = try quietSystem()
        let (a, b) = try sys.pipe2()
        let total = 3_000_000
        func pump(from: Int32, to: Int32, seed: UInt8) -> (TestThread, TestThread, Locked<Bool>) {
            let ok = Locked(false)
            let writer = TestThread {
                var sent = 0
                while sent < total {
                    let n = min(total - sent, 1 + (sent * 7919) % 20_000)
                    sent += try! sys.write(from, pattern(sent..<(sent + n), seed: seed))
                }
            }
            let reader = TestThread {
                var got = 0
                var good = true
                while got < total {
                    let chunk = try! sys.read(to, count: 12_345)
                    good = good && chunk == pattern(got..<(got + chunk.count), seed: seed)
                    got += chunk.count
                }
                ok.withLock { $0 = good }
            }
            return (writer, reader, ok)
        }
        let fwd = pump(from: b, to: a, seed: 1)
        let rev = pump(from: a, to: b, seed: 2)
        for t in [fwd.0, fwd.1, rev.0, rev.1] { #expect(t.join(timeout: 120)) }
        #expect(fwd.2.get && rev.2.get)
    }
}
