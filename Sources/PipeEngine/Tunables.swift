import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// How a direct write holds the writer's pages while the reader copies from them
/// (`vm_fault_quick_hold_pages` in the kernel).
public enum HoldStrategy: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Trust the range: no system call, no check. An invalid range is found only by the
    /// reader's guarded copy: the write is EFAULT after the reader was woken for the chunk,
    /// where the seed fails before; for measuring what holding costs.
    case none
    /// `madvise(MADV_POPULATE_READ)`: faults every page in and fails on a range that is not
    /// readable (EFAULT), without pinning. One system call per direct write.
    case populate
    /// `populate`, then `mlock` the range until the reader has consumed it (pinned, as the
    /// kernel's hold is). Where `mlock` is refused (no CAP_IPC_LOCK and over RLIMIT_MEMLOCK)
    /// the write goes on with the populate hold and `engine.hold_fallbacks` counts it.
    /// Linux mlock does not nest: the munlock after the write also undoes an mlock the caller
    /// had on those pages.
    case mlock
    /// Read one byte of every page under a fault guard (`pb_guard_probe`: a recovery point
    /// and a SIGSEGV/SIGBUS handler, as the kernel's `copyin` has `pcb_onfault`): an unmapped
    /// or `PROT_NONE` page fails the write with EFAULT, as `populate` does, without a system
    /// call. Not pinned, as `populate` is not. The default: as fast as `none`, with the
    /// contract of `populate` (FidelityAndDifferences, TunablesAndCounters).
    case probe
    public var description: String { rawValue }
}

/// How a buffered write copies the writer's bytes into the pipe buffer (the copy half of
/// `uiomove`). The buffer's lines were last read by the reader, usually on another CPU.
public enum CopyStrategy: String, Sendable, CaseIterable, CustomStringConvertible {
    /// `memcpy`: each line of the buffer is taken back from the reader's cache before it is
    /// written (the kernel's `copyin`).
    case cached
    /// Non-temporal (streaming) stores for copies of at least `streamingCopyMin` bytes: whole
    /// lines go to memory without being read first, and the reader's copies are invalidated;
    /// the reader then copies from memory. Measured here (buffered streams, the vCPUs ~64 ns
    /// apart): 1.1-1.6x for writes of 8 KiB and more, 0.8-1.1x at 4 KiB (2.7x at 4 KiB while
    /// they sat ~320 ns apart). x86-64 only; `cached` elsewhere.
    case streaming
    public var description: String { rawValue }
}

/// Copies shorter than this stay cached under `CopyStrategy.streaming`: their head and tail
/// lines are copied cached anyway, and so short a copy has little to gain.
public let streamingCopyMin = 1024

/// The tunables of one `PipeSystem`: FreeBSD's `kern.ipc.*` sysctls, plus the compile-time
/// sizes of sys/pipe.h, which this engine lets each instance choose.
public struct PipeConfiguration: Sendable, Hashable {
    /// `kern.ipc.maxpipekva` (bytes): the size of the KVA arena. Fixed once the instance exists.
    public var maxpipekva: Int
    /// `PIPE_SIZE`: initial size of a forward buffer.
    public var pipeSize: Int
    /// `BIG_PIPE_SIZE`: the largest size a buffer grows to.
    public var bigPipeSize: Int
    /// `SMALL_PIPE_SIZE`: reverse buffers, and every new buffer once pipekva > maxpipekva/2.
    public var smallPipeSize: Int
    /// `kern.ipc.pipe_mindirect`: the smallest write segment that takes the direct path.
    public var pipeMindirect: Int
    /// `kern.ipc.piperesizeallowed`.
    public var piperesizeallowed: Bool
    /// How direct writes hold the writer's pages.
    public var hold: HoldStrategy
    /// How `msleep` waits.
    public var wait: WaitStrategy
    /// How a buffered write copies into the pipe buffer.
    public var copy: CopyStrategy
    /// The descriptor table's size (`RLIMIT_NOFILE`): `pipe2` beyond it is EMFILE.
    public var maxDescriptors: Int
    /// Bytes of freed buffers the KVA arena keeps read-write and resident, so that the next
    /// buffer placed on those pages needs no `mprotect`; past it, every such page goes back
    /// to the kernel at once. 0 gives each buffer's pages back as it is freed (the kernel's
    /// behaviour). Accounting (`kern.ipc.pipekva`) and placement are the same either way.
    public var arenaCacheBytes: Int

    /// FreeBSD's defaults; `maxpipekva` autotuned to physical memory / 64, at least 512 KiB.
    public init() {
        maxpipekva = PipeConfiguration.autotunedMaxpipekva()
        pipeSize = DEFAULT_PIPE_SIZE
        bigPipeSize = DEFAULT_BIG_PIPE_SIZE
        smallPipeSize = DEFAULT_SMALL_PIPE_SIZE
        pipeMindirect = PIPE_MINDIRECT
        piperesizeallowed = true
        hold = .probe
        wait = .spin
        copy = .cached
        maxDescriptors = 1 << 20
        arenaCacheBytes = 1 << 20
    }

    /// `maxpipekva = physmem / 64`, clamped to at least 512 KiB (`pipeinit` / `kmeminit`).
    public static func autotunedMaxpipekva() -> Int {
        let pages = Int(sysconf(Int32(_SC_PHYS_PAGES)))
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let physical = pages > 0 && pageSize > 0 ? pages * pageSize : 1 << 30
        return max(512 * 1024, round_page(physical / 64))
    }

    /// Checks the sizes against each other; the error says which value to change.
    public func validate() throws(PipeEngineError) {
        func pageMultiple(_ value: Int, _ name: String) throws(PipeEngineError) {
            guard value > 0, value % PAGE_SIZE == 0 else {
                throw PipeEngineError(.invalidArgument,
                    "\(name) = \(value) must be a positive multiple of PAGE_SIZE (\(PAGE_SIZE))")
            }
        }
        try pageMultiple(smallPipeSize, "SMALL_PIPE_SIZE")
        try pageMultiple(pipeSize, "PIPE_SIZE")
        try pageMultiple(bigPipeSize, "BIG_PIPE_SIZE")
        try pageMultiple(maxpipekva, "maxpipekva")
        guard smallPipeSize <= pipeSize, pipeSize <= bigPipeSize else {
            throw PipeEngineError(.invalidArgument,
                "buffer sizes must satisfy SMALL_PIPE_SIZE (\(smallPipeSize)) <= PIPE_SIZE "
                + "(\(pipeSize)) <= BIG_PIPE_SIZE (\(bigPipeSize))")
        }
        guard bigPipeSize <= 1 << 30 else {
            throw PipeEngineError(.invalidArgument, "BIG_PIPE_SIZE = \(bigPipeSize) is over 1 GiB")
        }
        guard maxpipekva >= pipeSize + smallPipeSize else {
            throw PipeEngineError(.invalidArgument,
                "maxpipekva = \(maxpipekva) cannot hold even one pipe (PIPE_SIZE + SMALL_PIPE_SIZE "
                + "= \(pipeSize + smallPipeSize))")
        }
        guard pipeMindirect > PIPE_BUF else {
            throw PipeEngineError(.invalidArgument,
                "pipe_mindirect = \(pipeMindirect) must be greater than PIPE_BUF (\(PIPE_BUF)), "
                + "or small writes would lose their atomicity")
        }
        guard arenaCacheBytes >= 0 else {
            throw PipeEngineError(.invalidArgument,
                "arenaCacheBytes = \(arenaCacheBytes) must be 0 (no cache) or more")
        }
        guard maxDescriptors > 1 else {
            throw PipeEngineError(.invalidArgument, "maxDescriptors must be at least 2")
        }
    }

    /// `PIPENPAGES`: pages one direct write may hold (`BIG_PIPE_SIZE / PAGE_SIZE + 1`).
    public var pipeNPages: Int { bigPipeSize / PAGE_SIZE + 1 }
    /// `MINPIPESIZE`: the writer wake-up hysteresis of `pipe_read`.
    public var minPipeSize: Int { pipeSize / 3 }
}

/// A word-sized value read and written without the pipe mutex, as the seed reads its
/// sysctl globals (`pipe_mindirect`, `piperesizeallowed`, `amountpipekva`).
struct AtomicWord: ~Copyable {
    let pointer: UnsafeMutablePointer<Int64>
    init(_ value: Int) {
        // A cache line each: counters the writer bumps on every direct write must not share
        // a line with the tunables both threads read on every call.
        pointer = allocateCacheLine(of: Int64.self)
        pointer.pointee = Int64(value)
    }
    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
    @inline(__always) func load() -> Int { Int(pb_load_relaxed_i64(pointer)) }
    @inline(__always) func store(_ value: Int) { pb_store_i64(pointer, Int64(value)) }
    @inline(__always) func add(_ delta: Int) { _ = pb_fetch_add_i64(pointer, Int64(delta)) }
}
