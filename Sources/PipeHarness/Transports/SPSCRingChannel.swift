import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// A lock-free single-producer single-consumer byte ring: the fastest thing two threads can
/// do in user space, as a reference point for the pipes.
///
/// `head` (bytes ever written) is stored only by the writer, `tail` (bytes ever read) only by
/// the reader; both only grow, so `head - tail` is the fill and never wraps in practice (2^63
/// bytes). The writer publishes bytes with a release store of `head` after copying them in;
/// the reader acquires `head` before copying out and releases `tail` after, which the writer
/// acquires before overwriting that space. Each side keeps a private copy of the other's
/// counter and re-reads the shared one only when the copy says it is blocked, so that in steady
/// state each cache line moves between cores once per batch rather than once per call.
///
/// The control words live on separate 128-byte lines (two 64-byte lines: Intel's adjacent-line
/// prefetcher pairs them) so that writer and reader stores never share a line:
///   line 0: head, writerClosed        (stored by the writer)
///   line 1: tail, readerClosed        (stored by the reader)
///   line 2: writer's cached tail      (private to the writer)
///   line 3: reader's cached head      (private to the reader)
///
/// Blocking is a spin with `pause`, then `sched_yield` (so that two threads pinned to one CPU
/// still make progress); there is no sleeping, by design: this is the busy-polling baseline.
///
/// `@unchecked Sendable`: all cross-thread state is in the control block and accessed with the
/// atomics above; the Swift stored properties are immutable after `init`.
public final class SPSCRingChannel: ByteChannel, @unchecked Sendable {
    private static let line = 128
    private let control: UnsafeMutableRawPointer
    private let storage: UnsafeMutableRawPointer
    public let capacity: Int
    private let mask: Int
    /// Spins of `pause` before each wait starts yielding the CPU.
    public let spinsBeforeYield: Int

    private var head: UnsafeMutablePointer<Int64> { control.assumingMemoryBound(to: Int64.self) }
    private var writerClosed: UnsafeMutablePointer<Int64> { head + 1 }
    private var tail: UnsafeMutablePointer<Int64> { (control + Self.line).assumingMemoryBound(to: Int64.self) }
    private var readerClosed: UnsafeMutablePointer<Int64> { tail + 1 }
    private var writerCachedTail: UnsafeMutablePointer<Int64> { (control + 2 * Self.line).assumingMemoryBound(to: Int64.self) }
    private var readerCachedHead: UnsafeMutablePointer<Int64> { (control + 3 * Self.line).assumingMemoryBound(to: Int64.self) }

    public init(capacity requested: Int, spinsBeforeYield: Int = 512) throws {
        guard requested > 0, requested <= 1 << 40 else {
            throw HarnessError.invalidArgument("spsc-ring capacity \(requested) out of range")
        }
        var cap = 64
        while cap < requested { cap <<= 1 }
        capacity = cap
        mask = cap - 1
        self.spinsBeforeYield = spinsBeforeYield

        var c: UnsafeMutableRawPointer?
        var r = posix_memalign(&c, Self.line, 4 * Self.line)
        guard r == 0, let c else { throw HarnessError.system(call: "posix_memalign", errno: r, context: "spsc-ring control") }
        var s: UnsafeMutableRawPointer?
        r = posix_memalign(&s, 4096, cap)
        guard r == 0, let s else {
            free(c)
            throw HarnessError.system(call: "posix_memalign", errno: r, context: "spsc-ring storage of \(cap) bytes")
        }
        control = c
        storage = s
        control.initializeMemory(as: UInt8.self, repeating: 0, count: 4 * Self.line)
        // Touch the storage now so that page faults are not charged to the first transfer.
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: cap)
    }

    deinit {
        free(control)
        free(storage)
    }

    public func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        guard count > 0 else { return 0 }
        let h = Int(head.pointee)   // only this thread stores head
        var free = capacity - (h - Int(writerCachedTail.pointee))
        if free == 0 {
            var spins = 0
            while true {
                writerCachedTail.pointee = pb_acquire_load_i64(tail)
                if pb_acquire_load_i64(readerClosed) != 0 {
                    throw HarnessError.peerClosed("spsc-ring: reader closed")
                }
                free = capacity - (h - Int(writerCachedTail.pointee))
                if free > 0 { break }
                wait(&spins)
            }
        }
        let n = min(count, free)
        let at = h & mask
        let first = min(n, capacity - at)
        (storage + at).copyMemory(from: base, byteCount: first)
        if first < n { storage.copyMemory(from: base + first, byteCount: n - first) }
        pb_release_store_i64(head, Int64(h + n))
        return n
    }

    public func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        guard count > 0 else { return 0 }
        let t = Int(tail.pointee)   // only this thread stores tail
        var available = Int(readerCachedHead.pointee) - t
        if available == 0 {
            var spins = 0
            while true {
                readerCachedHead.pointee = pb_acquire_load_i64(head)
                available = Int(readerCachedHead.pointee) - t
                if available > 0 { break }
                if pb_acquire_load_i64(writerClosed) != 0 {
                    // The writer's last head store precedes its close; re-read head after
                    // seeing the close so that bytes published just before it are not lost.
                    readerCachedHead.pointee = pb_acquire_load_i64(head)
                    available = Int(readerCachedHead.pointee) - t
                    if available > 0 { break }
                    return 0
                }
                wait(&spins)
            }
        }
        let n = min(count, available)
        let at = t & mask
        let first = min(n, capacity - at)
        base.copyMemory(from: storage + at, byteCount: first)
        if first < n { (base + first).copyMemory(from: storage, byteCount: n - first) }
        pb_release_store_i64(tail, Int64(t + n))
        return n
    }

    public func closeWriteEnd() { pb_release_store_i64(writerClosed, 1) }
    public func closeReadEnd() { pb_release_store_i64(readerClosed, 1) }

    @inline(__always)
    private func wait(_ spins: inout Int) {
        if spins < spinsBeforeYield {
            spins += 1
            pb_cpu_relax()
        } else {
            sched_yield()
        }
    }
}
