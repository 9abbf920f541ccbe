import CPipeSys
import CMallocCounter
import Foundation
import Glibc
import Testing
@testable import PipeEngine

@Suite("pipe_direct_write: zero-copy writes from held pages")
struct DirectPathTests {
    /// Writes `count` bytes from `buffer` on a thread and reads them all here, in reads of
    /// `readSize`; returns what was read and what write returned.
    func transfer(_ sys: PipeSystem, _ r: Int32, _ w: Int32, _ data: [UInt8],
                  readSize: Int) throws -> (read: [UInt8], written: Int) {
        let written = Locked(0)
        let writer = TestThread {
            let n = try! data.withUnsafeBytes { try sys.write(w, $0.baseAddress, $0.count) }
            written.withLock { $0 = n }
        }
        let got = try sys.readExactly(r, data.count)
        #expect(writer.join())
        return (got, written.get)
    }

    @Test func takenExactlyAtTheThresholds() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        func directs() throws -> Int { try sys.sysctl("engine.direct_writes") }

        // One byte short of pipe_mindirect: buffered.
        _ = try transfer(sys, r, w, pattern(0..<(PIPE_MINDIRECT - 1)), readSize: 100_000)
        #expect(try directs() == 0)
        // Exactly pipe_mindirect: direct.
        _ = try transfer(sys, r, w, pattern(0..<PIPE_MINDIRECT), readSize: 100_000)
        #expect(try directs() == 1)
        // pipe_mindirect raised at run time: the same size is buffered now.
        try sys.sysctl("kern.ipc.pipe_mindirect", set: 16384)
        _ = try transfer(sys, r, w, pattern(0..<PIPE_MINDIRECT), readSize: 100_000)
        #expect(try directs() == 1)
        _ = try transfer(sys, r, w, pattern(0..<16384), readSize: 100_000)
        #expect(try directs() == 2)
        // Non-blocking writes never take the direct path.
        try sys.fcntl(w, F_SETFL, O_NONBLOCK)
        #expect(try sys.write(w, pattern(0..<16384)) == 16384)
        #expect(try directs() == 2)
        _ = try sys.readExactly(r, 16384)
    }

    @Test func notTakenWhenTheBufferIsSmallerThanMindirect() throws {
        var config = PipeConfiguration()
        config.piperesizeallowed = false          // the buffer stays at 16 KiB
        config.pipeMindirect = 20_000
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let (got, n) = try transfer(sys, r, w, pattern(0..<50_000), readSize: 7000)
        #expect(n == 50_000 && got == pattern(0..<50_000))
        #expect(try sys.sysctl("engine.direct_writes") == 0)
    }

    /// The writer does not return until the reader has consumed the held chunk; FIONREAD and
    /// fstat see the held bytes.
    @Test func directWriteWaitsForTheReader() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let data = pattern(0..<65536, seed: 5)
        let done = Locked<Int?>(nil)
        let writer = TestThread {
            let n = try! data.withUnsafeBytes { try sys.write(w, $0.baseAddress, $0.count) }
            done.withLock { $0 = n }
        }
        while try sys.bytesReadable(r) == 0 { usleep(500) }
        #expect(try sys.bytesReadable(r) == 65536)      // pipe_pages.cnt
        #expect(try sys.fstat(r).st_size == 65536)
        #expect(sys.heldPages == 17 || sys.heldPages == 16)
        #expect(try sys.read(r, count: 1000) == Array(data[0..<1000]))
        usleep(30_000)
        #expect(done.get == nil)
        #expect(try sys.bytesReadable(r) == 64536)
        #expect(try sys.readExactly(r, 64536) == Array(data[1000...]))
        #expect(writer.join())
        #expect(done.get == 65536)
        #expect(sys.heldPages == 0)
    }

    @Test(arguments: [8191, 8192, 8193, 16383, 16384, 16385, 65535, 65536, 65537, 1_048_579])
    func byteExactAcrossTheSizesThatMatter(size: Int) throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        for readSize in [1000, 8192, 70_000] {
            let data = pattern(0..<size, seed: UInt8(size & 0xFF))
            let (got, n) = try transfer(sys, r, w, data, readSize: readSize)
            #expect(n == size)
            #expect(got == data)
        }
        let directBytes = try sys.sysctl("engine.direct_bytes")
        #expect(size < PIPE_MINDIRECT ? directBytes == 0 : directBytes > 0)
        #expect(sys.heldPages == 0)
    }

    /// Every hold that validates (the system call of `populate`, the fault-guarded probe of
    /// `probe`) refuses an unreadable buffer the same way.
    @Test(arguments: [HoldStrategy.populate, .probe])
    func unreadableBufferIsEFAULTWithNothingTransferred(_ hold: HoldStrategy) throws {
        var config = PipeConfiguration()
        config.hold = hold
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let length = 65536
        let region = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        #expect(region != MAP_FAILED)
        expectErrno(.badAddress) { try sys.write(w, region, length) }
        munmap(region, length)
        expectErrno(.badAddress) { try sys.write(w, region, length) }   // unmapped
        #expect(try sys.bytesReadable(r) == 0)
        #expect(sys.heldPages == 0)
        #expect(try sys.sysctl("engine.direct_writes") == 0)
        // The pipe is still usable.
        let (got, n) = try transfer(sys, r, w, pattern(0..<40_000), readSize: 4096)
        #expect(n == 40_000 && got == pattern(0..<40_000))
    }

    /// `hold = none` checks nothing: a `PROT_NONE` source is published, and the reader's
    /// guarded copy finds it. The write is EFAULT, the reader gets nothing from it and sleeps
    /// on, and the next write reaches it.
    @Test func withoutAHoldTheReadersCopyFindsABadSource() throws {
        var config = PipeConfiguration()
        config.hold = .none
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let length = 65536
        let region = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        try #require(region != MAP_FAILED)
        defer { munmap(region, length) }
        let address = Int(bitPattern: region)
        let failure = Locked<Errno?>(nil)
        let writer = TestThread {
            do { _ = try sys.write(w, UnsafeRawPointer(bitPattern: address)!, length) } catch {
                failure.withLock { $0 = error as? Errno }
            }
            _ = try! sys.write(w, [1, 2, 3])
        }
        #expect(try sys.read(r, count: 100) == [1, 2, 3])
        #expect(writer.join())
        #expect(failure.get == .badAddress)
        #expect(try sys.sysctl("engine.direct_writes") == 1)
        #expect(sys.heldPages == 0)
    }

    /// A direct write of many chunks validates each next chunk's pages while the reader
    /// copies the one before (`hold_ahead_before_sleep` in PageHolds.swift): all chunks but
    /// the first are held ahead; with `hold = none` there is nothing to validate.
    @Test func eachNextChunkIsHeldAhead() throws {
        for hold in [HoldStrategy.populate, .mlock, .probe, .none] {
            var config = PipeConfiguration()
            config.hold = hold
            let sys = try quietSystem(config)
            let (r, w) = try sys.pipe2()
            let data = pattern(0..<(16 * 65536), seed: 5)
            let (got, n) = try transfer(sys, r, w, data, readSize: 65536)
            #expect(n == data.count && got == data)
            #expect(try sys.sysctl("engine.direct_writes") == 16)
            #expect(try sys.sysctl("engine.holds_ahead") == (hold == .none ? 0 : 15))
            #expect(sys.heldPages == 0)
        }
    }

    /// writev: the chunk held ahead is the one `pipe_write` takes next, across iovec
    /// boundaries; an iovec below `pipe_mindirect` (buffered) is never held ahead.
    @Test func holdAheadFollowsTheIovecs() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        // Chunks: 64K and 36K direct (the second held ahead); the 3,000-byte iovec goes to the
        // buffer, and the buffered copy fills the buffer's 64K from it and the third iovec
        // (uiomove spans iovecs); the third's last 39,864 bytes go direct, not held ahead.
        let sizes = [100 * 1024, 3000, 100 * 1024]
        let data = pattern(0..<sizes.reduce(0, +), seed: 13)
        let written = Locked(0)
        let writer = TestThread {
            data.withUnsafeBytes { raw in
                var offset = 0
                var iovs: [iovec] = sizes.map { size in
                    defer { offset += size }
                    return iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress! + offset),
                                 iov_len: size)
                }
                let n = try! sys.writev(w, &iovs, Int32(iovs.count))
                written.withLock { $0 = n }
            }
        }
        let got = try sys.readExactly(r, data.count)
        #expect(writer.join())
        #expect(written.get == data.count && got == data)
        #expect(try sys.sysctl("engine.direct_writes") == 3)
        #expect(try sys.sysctl("engine.direct_bytes") == 65536 + 36864 + 39864)
        #expect(try sys.sysctl("engine.holds_ahead") == 1)
        #expect(sys.heldPages == 0)
    }

    /// A chunk whose pages cannot be read fails at its own turn, as in the seed, though its
    /// pages were looked at ahead: the chunk before it is delivered whole, the write is
    /// EFAULT, and nothing counts as held ahead.
    @Test(arguments: [HoldStrategy.populate, .probe])
    func unreadableLaterChunkFailsAtItsOwnTurn(_ hold: HoldStrategy) throws {
        var config = PipeConfiguration()
        config.hold = hold
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let chunk = 65536
        let region = mmap(nil, 2 * chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        #expect(region != MAP_FAILED)
        defer { munmap(region, 2 * chunk) }
        let bytes = region.bindMemory(to: UInt8.self, capacity: chunk)
        for i in 0..<chunk { bytes[i] = patternByte(i, seed: 9) }
        #expect(mprotect(region + chunk, chunk, PROT_NONE) == 0)
        let address = Int(bitPattern: region)
        let failure = Locked<Errno?>(nil)
        let writer = TestThread {
            do {
                _ = try sys.write(w, UnsafeRawPointer(bitPattern: address)!, 2 * chunk)
            } catch {
                failure.withLock { $0 = error as? Errno }
            }
        }
        let got = try sys.readExactly(r, chunk)
        #expect(writer.join())
        #expect(got == pattern(0..<chunk, seed: 9))
        #expect(failure.get == .badAddress)
        #expect(try sys.sysctl("engine.direct_writes") == 1)
        #expect(try sys.sysctl("engine.holds_ahead") == 0)
        #expect(try sys.bytesReadable(r) == 0)
        #expect(sys.heldPages == 0)
    }

    /// Another thread of the writer unmaps the memory being written while the reader is
    /// inside the chunk (parked at the `directCopy` point, halfway): the reader's guarded copy
    /// stops there, its read returns the half that arrived, the write is EFAULT, neither
    /// thread crashes, and the pipe goes on. Whatever the hold: none keeps the pages mapped.
    @Test(arguments: HoldStrategy.allCases)
    func writerMemoryUnmappedUnderTheReadersCopy(_ hold: HoldStrategy) throws {
        var config = PipeConfiguration()
        config.hold = hold
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let chunk = 65536
        let region = mmap(nil, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        try #require(region != MAP_FAILED)
        let bytes = region.bindMemory(to: UInt8.self, capacity: chunk)
        for i in 0..<chunk { bytes[i] = patternByte(i, seed: 17) }
        let address = Int(bitPattern: region)
        let recoveredBefore = pb_guard_recovered_faults()

        let parked = DispatchSemaphore(value: 0), unmapped = DispatchSemaphore(value: 0)
        sys.injectFaults(FaultSchedule { point, i, _ in
            guard point == .directCopy && i == 0 else { return false }
            parked.signal()
            unmapped.wait()
            return true
        })
        let unmapper = TestThread {
            parked.wait()
            munmap(UnsafeMutableRawPointer(bitPattern: address), chunk)
            unmapped.signal()
        }
        let failure = Locked<Errno?>(nil)
        let writer = TestThread {
            do {
                _ = try sys.write(w, UnsafeRawPointer(bitPattern: address)!, chunk)
            } catch {
                failure.withLock { $0 = error as? Errno }
            }
        }
        var got = [UInt8](repeating: 0, count: chunk)
        let n = try got.withUnsafeMutableBytes { try sys.read(r, $0.baseAddress, chunk) }
        #expect(unmapper.join())
        #expect(writer.join())
        sys.injectFaults(nil)

        #expect(n == chunk / 2)
        #expect(Array(got[0..<n]) == pattern(0..<(chunk / 2), seed: 17))
        #expect(failure.get == .badAddress)
        #expect(sys.injectedFaults(at: .directCopy) == 1)
        #expect(try sys.sysctl("engine.direct_writes") == 1)
        #expect(try sys.bytesReadable(r) == 0)
        #expect(sys.heldPages == 0)
        if pb_guard_catches_faults() == 1 { #expect(pb_guard_recovered_faults() > recoveredBefore) }
        let (after, written) = try transfer(sys, r, w, pattern(0..<100_000, seed: 3), readSize: 65536)
        #expect(written == 100_000 && after == pattern(0..<100_000, seed: 3))
    }

    /// The engine never writes the writer's memory: a read-only source works.
    @Test func readOnlySourceIsNeverWritten() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let length = 3 * 65536
        let region = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(region, length) }
        let bytes = region.bindMemory(to: UInt8.self, capacity: length)
        for i in 0..<length { bytes[i] = patternByte(i, seed: 11) }
        #expect(mprotect(region, length, PROT_READ) == 0)
        let n = Locked(0)
        let address = Int(bitPattern: region)
        let writer = TestThread {
            let value = try! sys.write(w, UnsafeRawPointer(bitPattern: address)! + 100, length - 100)
            n.withLock { $0 = value }
        }
        let got = try sys.readExactly(r, length - 100)
        #expect(writer.join())
        #expect(n.get == length - 100)
        #expect(got == pattern(100..<length, seed: 11))
    }

    /// The writer's pages are locked while the reader copies from them and unlocked after.
    /// Counted in the writer's own mapping (`Locked:` in /proc/self/smaps): the process-wide
    /// VmLck also moves with other tests that hold with mlock at the same time.
    @Test func mlockHoldLocksAndUnlocks() throws {
        var config = PipeConfiguration()
        config.hold = .mlock
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        let length = 65536
        // Between two PROT_NONE guard pages: a neighbouring mapping that another test locks
        // at the same moment can never merge with this one and add to its `Locked:` line.
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let reserved = try #require(mmap(nil, length + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(reserved != MAP_FAILED)
        defer { munmap(reserved, length + 2 * page) }
        let region = reserved + page
        try #require(mprotect(region, length, PROT_READ | PROT_WRITE) == 0)
        let data = pattern(0..<length)
        data.withUnsafeBytes { _ = memcpy(region, $0.baseAddress!, length) }
        #expect(lockedKB(in: region) == 0)
        let address = Int(bitPattern: region)
        let writer = TestThread { _ = try! sys.write(w, UnsafeRawPointer(bitPattern: address)!, length) }
        while try sys.bytesReadable(r) == 0 { usleep(500) }
        let fallbacks = try sys.sysctl("engine.hold_fallbacks")
        // (The thread sanitizer's runtime turns mlock into a no-op: nothing to see there.)
        if fallbacks == 0 && !pb_sanitized_build() {
            #expect(lockedKB(in: region) == length / 1024)   // the held chunk's 16 pages
        }
        #expect(try sys.readExactly(r, length) == data)
        #expect(writer.join())
        #expect(lockedKB(in: region) == 0)
        #expect(sys.heldPages == 0)
    }

    /// The reader closing during a direct write: the held chunk counts as written; a write
    /// that moved nothing is EPIPE.
    @Test func readerClosingEndsTheDirectWrite() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let data = pattern(0..<200_000)
        let result = Locked<Result<Int, Errno>?>(nil)
        let writer = TestThread {
            do {
                let n = try data.withUnsafeBytes { try sys.write(w, $0.baseAddress, $0.count) }
                result.withLock { $0 = .success(n) }
            } catch {
                result.withLock { $0 = .failure(error as! Errno) }
            }
        }
        while try sys.bytesReadable(r) == 0 { usleep(500) }
        let first = try sys.bytesReadable(r)
        #expect(first == 65536)
        try sys.close(r)
        #expect(writer.join())
        #expect(result.get == .success(65536))
        #expect(sys.heldPages == 0)
        expectErrno(.brokenPipe) { try sys.write(w, pattern(0..<100_000)) }
    }

    @Test func holdStrategiesAllDeliverTheSameBytes() throws {
        for hold in HoldStrategy.allCases {
            var config = PipeConfiguration()
            config.hold = hold
            let sys = try quietSystem(config)
            let (r, w) = try sys.pipe2()
            let data = pattern(0..<300_000, seed: 17)
            let (got, n) = try transfer(sys, r, w, data, readSize: 50_000)
            #expect(n == data.count && got == data, "hold \(hold)")
            #expect(sys.heldPages == 0)
        }
    }
}

/// `Locked:` (kB) of the mapping of /proc/self/smaps that holds `address`; -1 if not found.
func lockedKB(in address: UnsafeMutableRawPointer) -> Int {
    // (String(contentsOfFile:) stops short on this file: procfs reports size 0.)
    guard let file = FileHandle(forReadingAtPath: "/proc/self/smaps") else { return -1 }
    defer { try? file.close() }
    let smaps = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
    let target = UInt(bitPattern: address)
    var inside = false
    for line in smaps.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let range = fields.first, range.contains("-"), !range.hasSuffix(":") {
            let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
            inside = bounds.count == 2 && bounds[0] <= target && target < bounds[1]
        } else if inside, fields.first == "Locked:", fields.count > 1 {
            return Int(fields[1]) ?? -1
        }
    }
    return -1
}
