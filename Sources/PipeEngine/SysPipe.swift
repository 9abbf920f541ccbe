import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

// sys_pipe.c, in user space. The routines below model FreeBSD's sys/kern/sys_pipe.c
// (freebsd-src at revision f4f56ff43dbd30930f4b018e39ba2b9abf84551f: "the seed"); each names
// the seed routine it models and keeps its decisions in the seed's order, so that the two
// read side by side. The locking rules are stated at the top of Pipe.swift.
//
// Every difference from the kernel, and everything beyond the seed, is listed once, with its
// reason, in the catalog article FidelityAndDifferences
// (Sources/PipeEngine/PipeEngine.docc/FidelityAndDifferences.md).

/// The global state of sys_pipe.c for one simulated kernel: tunables, counters, the arena.
final class PipeKernel: @unchecked Sendable {
    let config: PipeConfiguration
    let arena: KVAArena
    /// `maxpipekva`, fixed at creation.
    let maxpipekva: Int
    let PIPE_SIZE: Int
    let BIG_PIPE_SIZE: Int
    let SMALL_PIPE_SIZE: Int
    let MINPIPESIZE: Int
    let PIPENPAGES: Int
    let hold: HoldStrategy
    /// `CopyStrategy.streaming`, where the CPU has streaming stores.
    let streamingCopy: Bool
    /// Whether this kernel has MADV_POPULATE_READ (Linux 5.14+), probed once at creation.
    let populateSupported: Bool

    // Sysctl-backed globals, read without the pipe mutex as the seed reads them.
    let amountpipekva = AtomicWord(0)
    let pipefragretry = AtomicWord(0)
    let pipeallocfail = AtomicWord(0)
    let piperesizefail = AtomicWord(0)
    let piperesizeallowed: AtomicWord
    let pipe_mindirect: AtomicWord
    let spinNanoseconds: AtomicWord
    // Beyond FreeBSD: what a benchmark wants to see.
    let pipes = AtomicWord(0)
    let directWrites = AtomicWord(0)
    let directBytes = AtomicWord(0)
    let cloneWrites = AtomicWord(0)
    let holdFallbacks = AtomicWord(0)
    let holdsAhead = AtomicWord(0)
    let resizes = AtomicWord(0)
    let heldPages = AtomicWord(0)

    /// `pipeino_unr`: inode numbers from 1, never reused.
    private let pipeino_unr = AtomicWord(1)
    /// `pipedev_ino`.
    let pipedev_ino: UInt64

    // `ppsratecheck(&lastfail, &curfail, 1)` state, guarded by `messageLock`.
    private let messageLock = PipeMutex()
    private var lastfail: Int64 = Int64.min
    private(set) var messagesSuppressed = 0
    let log: @Sendable (String) -> Void

    /// Fault injection (tests).
    let faults = FaultInjector()

    /// The hook standing in for the MAC framework.
    let policy: PipePolicy?

    nonisolated(unsafe) private static var nextDevice: UInt64 = 0x7000_0000
    private static let deviceLock = PipeMutex()

    init(config: PipeConfiguration, log: @escaping @Sendable (String) -> Void,
         policy: PipePolicy?) throws(PipeEngineError) {
        try config.validate()
        self.config = config
        do {
            arena = try KVAArena(size: config.maxpipekva, cacheBytes: config.arenaCacheBytes,
                                 faults: faults)
        } catch {
            throw PipeEngineError(error, "cannot reserve a KVA arena of \(config.maxpipekva) bytes")
        }
        maxpipekva = config.maxpipekva
        PIPE_SIZE = config.pipeSize
        BIG_PIPE_SIZE = config.bigPipeSize
        SMALL_PIPE_SIZE = config.smallPipeSize
        MINPIPESIZE = config.minPipeSize
        PIPENPAGES = config.pipeNPages
        hold = config.hold
        #if arch(x86_64)
        streamingCopy = config.copy == .streaming
        #else
        streamingCopy = false
        #endif
        populateSupported = pb_populate_read_supported()
        piperesizeallowed = AtomicWord(config.piperesizeallowed ? 1 : 0)
        pipe_mindirect = AtomicWord(config.pipeMindirect)
        spinNanoseconds = AtomicWord(config.wait.maxSpinNanoseconds)
        self.log = log
        self.policy = policy
        PipeKernel.deviceLock.lock()
        PipeKernel.nextDevice += 1
        pipedev_ino = PipeKernel.nextDevice
        PipeKernel.deviceLock.unlock()
    }

    var waitStrategy: WaitStrategy { WaitStrategy(maxSpinNanoseconds: spinNanoseconds.load()) }

    /// `alloc_unr64(&pipeino_unr)`.
    func alloc_unr64() -> UInt64 {
        UInt64(pb_fetch_add_i64(pipeino_unr.pointer, 1))
    }

    /// `msleep(chan, PIPE_MTX(cpipe), PRIBIO | (catch ? PCATCH : 0), wmesg, 0)`.
    @inline(__always)
    func msleep(_ chan: WaitChannel, _ cpipe: Pipe, catch: Bool, _ wmesg: WaitMessage) -> Errno? {
        chan.sleep(cpipe.PIPE_MTX, interruptible: `catch`, wmesg, strategy: waitStrategy)
    }

    /// Copies of at most this many bytes (a page) keep the pipe mutex (why: FidelityAndDifferences).
    static let copyUnderMutexMax = PAGE_SIZE

    /// `PIPE_UNLOCK(cpipe); error = uiomove(cp, n, uio); PIPE_LOCK(cpipe)`, the mutex kept
    /// for a small copy. Called with the mutex and the I/O lock flag held.
    @inline(__always)
    func uiomove_unlocked(_ cpipe: Pipe, _ cp: UnsafeMutableRawPointer, _ n: Int,
                          _ uio: inout UIO, streaming: Bool = false) -> Errno? {
        if n <= PipeKernel.copyUnderMutexMax { return uiomove(cp, n, &uio, streaming: streaming) }
        cpipe.PIPE_UNLOCK()
        let error = uiomove(cp, n, &uio, streaming: streaming)
        cpipe.PIPE_LOCK()
        return error
    }

    /// `PIPE_UNLOCK(cpipe); error = uiomove_fromphys(ms, pos, n, uio); PIPE_LOCK(cpipe)`, the
    /// reader's guarded copy from the writer's held pages, the mutex kept for a small copy as
    /// in `uiomove_unlocked`. While fault injection is on, a copy of two pages or more passes
    /// the `directCopy` point at a page boundary halfway, with no lock held.
    func uiomove_fromphys_unlocked(_ cpipe: Pipe, _ pages: UnsafeRawPointer, _ pos: Int, _ n: Int,
                                   _ uio: inout UIO, _ sourceFaulted: inout Bool) -> Errno? {
        if n <= PipeKernel.copyUnderMutexMax {
            return uiomove_fromphys(pages, pos, n, &uio, sourceFaulted: &sourceFaulted)
        }
        cpipe.PIPE_UNLOCK()
        var error: Errno?
        if faults.isEnabled && n >= 2 * PAGE_SIZE {
            let start = Int(bitPattern: pages) + pos
            let first = trunc_page(start + n / 2) - start
            error = uiomove_fromphys(pages, pos, first, &uio, sourceFaulted: &sourceFaulted)
            if error == nil && !sourceFaulted {
                _ = faults.shouldFail(.directCopy, bytes: first)
                error = uiomove_fromphys(pages, pos + first, n - first, &uio, sourceFaulted: &sourceFaulted)
            }
        } else {
            error = uiomove_fromphys(pages, pos, n, &uio, sourceFaulted: &sourceFaulted)
        }
        cpipe.PIPE_LOCK()
        return error
    }

    /// `ppsratecheck(&lastfail, &curfail, 1)` + `printf`.
    private func ratelimitedMessage(_ text: String) {
        let now = pb_monotonic_ns()
        messageLock.lock()
        let print = lastfail == Int64.min || now - lastfail >= 1_000_000_000
        if print { lastfail = now } else { messagesSuppressed += 1 }
        messageLock.unlock()
        if print { log(text) }
    }

    // MARK: - pipe_paircreate, pipe_create

    /// `pipe_paircreate`: a pair, forward buffer large (if KVA allows), reverse small.
    func pipe_paircreate() -> Result<PipePair, Errno> {
        let pp = PipePair(kernel: self)
        let rpipe = pp.pp_rpipe, wpipe = pp.pp_wpipe
        // Only the forward direction pipe is backed by big buffer by default.
        if let error = pipe_create(rpipe, large_backing: true) {
            return .failure(error)
        }
        if let error = pipe_create(wpipe, large_backing: false) {
            // The inode number of rpipe stays allocated but unused, as in the seed.
            pipe_free_kmem(rpipe)
            return .failure(error)
        }
        rpipe.pipe_state.insert(.DIRECTOK)
        wpipe.pipe_state.insert(.DIRECTOK)
        pipes.add(1)
        return .success(pp)
    }

    /// `pipe_create`: allocate the buffer, then the inode number.
    func pipe_create(_ pipe: Pipe, large_backing: Bool) -> Errno? {
        let error = pipespace_new(pipe, !large_backing || amountpipekva.load() > maxpipekva / 2
                                  ? SMALL_PIPE_SIZE : PIPE_SIZE)
        if error == nil {
            pipe.pipe_ino = alloc_unr64()
        }
        return error
    }

    // MARK: - pipespace_new, pipespace, pipe_free_kmem

    /// `pipespace_new`: allocate (or reallocate) the circular buffer. On failure the old buffer
    /// and its data are kept and ENOMEM is returned.
    func pipespace_new(_ cpipe: Pipe, _ requested: Int) -> Errno? {
        // (The seed's KASSERT reads pipe_state unlocked; read it under the mutex, as
        // `pipespace` does, so that it cannot race with pipe_poll's PIPE_SEL.)
        cpipe.PIPE_LOCK()
        let direct = cpipe.pipe_state.contains(.DIRECTW)
        cpipe.PIPE_UNLOCK()
        precondition(!direct, "pipespace: resize of direct writes not allowed")
        var size = requested
        var buffer: UnsafeMutableRawPointer?
        var cnt: Int
        while true {  // retry:
            cnt = cpipe.pipe_buffer.cnt
            if cnt > size { size = cnt }
            size = round_page(size)
            switch arena.allocate(size) {
            case .allocated(let address): buffer = address
            case .noRoom: buffer = nil
            case .hostRefused:
                // Not the seed's "no room": the host's mapping limit (see KVAArena). No retry
                // at a smaller size, no pipefragretry/pipeallocfail; the old buffer is kept.
                ratelimitedMessage("""
                    the host refused a pipe buffer mapping: vm.max_map_count (\(pb_max_map_count())) \
                    reached in this process; raise it with `sysctl -w vm.max_map_count=N`
                    """)
                return .noMemory
            }
            if buffer != nil { break }
            if cpipe.pipe_buffer.buffer == nil && size > SMALL_PIPE_SIZE {
                size = SMALL_PIPE_SIZE
                pipefragretry.add(1)
                continue
            }
            if cpipe.pipe_buffer.buffer == nil {
                pipeallocfail.add(1)
                ratelimitedMessage("kern.ipc.maxpipekva exceeded; see tuning(7)")
            } else {
                piperesizefail.add(1)
                PipeEvent.resizeFail.count()
            }
            return .noMemory
        }
        let newBuffer = buffer!
        // copy data, then free old resources if we're resizing. The copy runs unlocked (the
        // I/O lock keeps the old buffer still); the new fields are published under the pipe
        // mutex, since FIONREAD, poll and the kqueue filters read them under it.
        if cnt > 0 {
            let old = cpipe.pipe_buffer
            if old.in <= old.out {
                let firstseg = old.size - old.out
                memcpy(newBuffer, old.buffer! + old.out, firstseg)
                if cnt - firstseg > 0 {
                    memcpy(newBuffer + firstseg, old.buffer!, old.in)
                }
            } else {
                memcpy(newBuffer, old.buffer! + old.out, cnt)
            }
        }
        if cpipe.pipe_buffer.buffer != nil {
            resizes.add(1)
            (size > cpipe.pipe_buffer.size ? PipeEvent.resizeGrow : .resizeShrink).count()
        }
        pipe_free_kmem(cpipe)
        cpipe.PIPE_LOCK()
        cpipe.pipe_buffer.buffer = newBuffer
        cpipe.pipe_buffer.size = size
        cpipe.pipe_buffer.in = cnt
        cpipe.pipe_buffer.out = 0
        cpipe.pipe_buffer.cnt = cnt
        cpipe.PIPE_UNLOCK()
        amountpipekva.add(size)
        return nil
    }

    /// `pipespace`: `pipespace_new` with the I/O lock asserted. Called without the pipe
    /// mutex (both callers drop it first, as the seed's do); the seed's KASSERT reads
    /// `pipe_state` unlocked, which races with `pipe_poll` setting PIPE_SEL under the mutex,
    /// so the assertion reads it under the mutex (pipe creation and resizes pay one lock,
    /// no read or write does).
    @discardableResult
    func pipespace(_ cpipe: Pipe, _ size: Int) -> Errno? {
        cpipe.PIPE_LOCK()
        let locked = cpipe.pipe_state.contains(.LOCKFL)
        cpipe.PIPE_UNLOCK()
        precondition(locked, "Unlocked pipe passed to pipespace")
        return pipespace_new(cpipe, size)
    }

    /// `pipe_free_kmem`: give the buffer back to the arena; forget the page mapping. Called
    /// without the pipe mutex (as the seed asserts); the fields are cleared under it, the
    /// arena call is made after it is dropped.
    func pipe_free_kmem(_ cpipe: Pipe) {
        cpipe.PIPE_LOCK()
        let buffer = cpipe.pipe_buffer.buffer, size = cpipe.pipe_buffer.size
        cpipe.pipe_buffer.buffer = nil
        cpipe.pipe_pages.cnt = 0
        cpipe.pipe_pages.pos = 0
        cpipe.pipe_pages.npages = 0
        cpipe.PIPE_UNLOCK()
        if let buffer {
            amountpipekva.add(-size)
            arena.deallocate(buffer, size)
        }
    }

    // MARK: - pipelock, pipeunlock, pipeselwakeup

    /// `pipelock`: take the I/O lock flag, sleeping while another thread has it.
    /// Called with the pipe mutex held.
    @inline(__always)
    func pipelock(_ cpipe: Pipe, catch: Bool) -> Errno? {
        while cpipe.pipe_state.contains(.LOCKFL) {
            precondition(cpipe.pipe_waiters >= 0, "pipelock: bad waiter count")
            cpipe.pipe_waiters += 1
            let error = msleep(cpipe.waitersChan, cpipe, catch: `catch`, .pipelk)
            cpipe.pipe_waiters -= 1
            if let error { return error }
        }
        cpipe.pipe_state.insert(.LOCKFL)
        return nil
    }

    /// `pipeunlock`.
    @inline(__always)
    func pipeunlock(_ cpipe: Pipe) {
        precondition(cpipe.pipe_state.contains(.LOCKFL), "Unlocked pipe passed to pipeunlock")
        precondition(cpipe.pipe_waiters >= 0, "pipeunlock: bad waiter count")
        cpipe.pipe_state.remove(.LOCKFL)
        if cpipe.pipe_waiters > 0 {
            cpipe.waitersChan.wakeupOne()
        }
    }

    /// `wakeup(cpipe)`.
    @inline(__always) func wakeup(_ cpipe: Pipe) { cpipe.chan.wakeup() }

    /// `pipeselwakeup`: wake poll/select waiters, signal the SIGIO owner, run the knotes.
    func pipeselwakeup(_ cpipe: Pipe) {
        PipeEvent.selwakeup.count()
        if cpipe.pipe_state.contains(.SEL) {
            cpipe.pipe_sel.selwakeup()
            if !cpipe.pipe_sel.SEL_WAITING {
                cpipe.pipe_state.remove(.SEL)
            }
        }
        if cpipe.pipe_state.contains(.ASYNC) && cpipe.pipe_sigio != 0 {
            signalSink?.pgsigio(owner: cpipe.pipe_sigio, .SIGIO)
        }
        cpipe.pipe_sel.KNOTE_LOCKED()
    }

    /// Where SIGIO and SIGPIPE go (the owning PipeSystem).
    weak var signalSink: SignalSink?

    // MARK: - pipe_read

    /// `pipe_read`.
    func pipe_read(_ fp: File, _ uio: inout UIO) -> Errno? {
        fp.withData { rpipe in pipe_read(fp, rpipe, &uio) }
    }

    private func pipe_read(_ fp: File, _ rpipe: Pipe, _ uio: inout UIO) -> Errno? {
        var error: Errno? = nil
        var nread = 0
        var size: Int

        rpipe.PIPE_LOCK()
        rpipe.pipe_busy += 1
        error = pipelock(rpipe, catch: true)
        if error == nil {
            locked: do {
                if let policy, let denied = policy.check(.read, fp.f_cred) {
                    error = denied
                    break locked
                }
                if amountpipekva.load() > (3 * maxpipekva) / 4 {
                    if !rpipe.pipe_state.contains(.DIRECTW) &&
                        rpipe.pipe_buffer.size > SMALL_PIPE_SIZE &&
                        rpipe.pipe_buffer.cnt <= SMALL_PIPE_SIZE &&
                        piperesizeallowed.load() == 1 {
                        rpipe.PIPE_UNLOCK()
                        pipespace(rpipe, SMALL_PIPE_SIZE)
                        rpipe.PIPE_LOCK()
                    }
                }

                while uio.uio_resid > 0 {
                    // normal pipe buffer receive
                    if rpipe.pipe_buffer.cnt > 0 {
                        size = rpipe.pipe_buffer.size - rpipe.pipe_buffer.out
                        if size > rpipe.pipe_buffer.cnt { size = rpipe.pipe_buffer.cnt }
                        if size > uio.uio_resid { size = uio.uio_resid }

                        error = uiomove_unlocked(rpipe, rpipe.pipe_buffer.buffer! +
                                                 rpipe.pipe_buffer.out, size, &uio)
                        if error != nil { break }

                        rpipe.pipe_buffer.out += size
                        if rpipe.pipe_buffer.out >= rpipe.pipe_buffer.size {
                            rpipe.pipe_buffer.out = 0
                        }
                        rpipe.pipe_buffer.cnt -= size

                        // If there is no more to read in the pipe, reset its pointers to
                        // the beginning. This improves cache hit stats.
                        if rpipe.pipe_buffer.cnt == 0 {
                            rpipe.pipe_buffer.in = 0
                            rpipe.pipe_buffer.out = 0
                        }
                        nread += size
                    } else if rpipe.pipe_pages.cnt != 0 {
                        // Direct copy, bypassing a kernel buffer.
                        size = rpipe.pipe_pages.cnt
                        if size > uio.uio_resid { size = uio.uio_resid }
                        let resid = uio.uio_resid
                        var sourceFaulted = false
                        error = uiomove_fromphys_unlocked(rpipe, rpipe.pipe_pages.pages!,
                                                          rpipe.pipe_pages.pos, size, &uio, &sourceFaulted)
                        if error != nil { break }
                        size = resid - uio.uio_resid   // all of it, unless the source faulted
                        nread += size
                        rpipe.pipe_pages.pos += size
                        rpipe.pipe_pages.cnt -= size
                        if sourceFaulted {
                            // Beyond the seed: the writer's memory went away under the copy.
                            // The reader keeps what arrived; the writer's write is EFAULT.
                            rpipe.pipe_pages.cnt = 0
                            rpipe.pipe_pages.faulted = true
                        }
                        if rpipe.pipe_pages.cnt == 0 {
                            rpipe.pipe_state.remove(.WANTW)
                            wakeup(rpipe)
                        }
                    } else {
                        // detect EOF condition; read returns 0 on EOF, no need to set error
                        if rpipe.pipe_state.contains(.EOF) { break }

                        // If the "write-side" has been blocked, wake it up now.
                        if rpipe.pipe_state.contains(.WANTW) {
                            rpipe.pipe_state.remove(.WANTW)
                            wakeup(rpipe)
                        }

                        // Break if some data was read.
                        if nread > 0 { break }

                        // Unlock the pipe buffer for our remaining processing. We will
                        // either break out with an error or we will sleep and relock to loop.
                        pipeunlock(rpipe)

                        // Handle non-blocking mode operation or wait for more data.
                        if fp.f_flag.contains(.FNONBLOCK) {
                            error = .wouldBlock
                        } else {
                            rpipe.pipe_state.insert(.WANTR)
                            error = msleep(rpipe.chan, rpipe, catch: true, .piperd)
                            if error == nil {
                                error = pipelock(rpipe, catch: true)
                            }
                        }
                        if error != nil {
                            return pipe_read_unlocked_error(rpipe, error, nread)
                        }
                    }
                }
            }
            // locked_error:
            pipeunlock(rpipe)

            // XXX: should probably do this before getting any locks.
            if error == nil {
                pipe_timestamp(&rpipe.pipe_atime)
            }
        }
        return pipe_read_unlocked_error(rpipe, error, nread)
    }

    /// The `unlocked_error:` tail of `pipe_read`. Called with the pipe mutex held; drops it.
    @inline(__always)
    private func pipe_read_unlocked_error(_ rpipe: Pipe, _ error: Errno?, _ nread: Int) -> Errno? {
        rpipe.pipe_busy -= 1

        // PIPE_WANT processing only makes sense if pipe_busy is 0.
        if rpipe.pipe_busy == 0 && rpipe.pipe_state.contains(.WANT) {
            rpipe.pipe_state.remove([.WANT, .WANTW])
            wakeup(rpipe)
        } else if rpipe.pipe_buffer.cnt < MINPIPESIZE {
            // Handle write blocking hysteresis.
            if rpipe.pipe_state.contains(.WANTW) {
                rpipe.pipe_state.remove(.WANTW)
                wakeup(rpipe)
            }
        }

        // Only wake up writers if there was actually something read. Otherwise, when calling
        // read(2) at EOF, a spurious wakeup occurs.
        if nread > 0 && rpipe.pipe_buffer.size - rpipe.pipe_buffer.cnt >= PIPE_BUF {
            pipeselwakeup(rpipe)
        }

        rpipe.PIPE_UNLOCK()
        return error
    }

    // MARK: - the direct path

    /// `pipe_build_write_buffer`: hold the writer's pages (at most the buffer's size) and
    /// publish them to the reader. Called with the pipe mutex held.
    func pipe_build_write_buffer(_ wpipe: Pipe, _ uio: inout UIO, _ ahead: inout Range<Int>?) -> Errno? {
        precondition(!wpipe.pipe_state.contains(.DIRECTW), "PIPE_DIRECTW set")
        precondition(wpipe.pipe_pages.cnt == 0, "pipe map contains residual data")

        let size = direct_chunk_size(wpipe, uio)

        wpipe.pipe_state.insert(.DIRECTW)
        wpipe.PIPE_UNLOCK()
        let base = UnsafeRawPointer(uio.uio_iov.pointee.iov_base)
        let held = vm_fault_quick_hold_pages(base, size, &ahead)
        wpipe.PIPE_LOCK()
        guard let held else {
            wpipe.pipe_state.remove(.DIRECTW)
            return .badAddress
        }

        wpipe.pipe_pages.npages = held.npages
        wpipe.pipe_pages.pages = held.pages
        wpipe.pipe_pages.locked = held.locked
        wpipe.pipe_pages.pos = Int(bitPattern: base) & PAGE_MASK
        wpipe.pipe_pages.cnt = size

        uio.uio_iov.pointee.iov_len -= size
        uio.uio_iov.pointee.iov_base = uio.uio_iov.pointee.iov_base! + size
        if uio.uio_iov.pointee.iov_len == 0 {
            uio.uio_iov += 1
            uio.uio_iovcnt -= 1
        }
        uio.uio_resid -= size
        uio.uio_offset += size
        directWrites.add(1)
        directBytes.add(size)
        PipeEvent.directChunk.count()
        return nil
    }

    /// `pipe_write`'s test for the direct path (called with `uio_resid > 0`).
    @inline(__always)
    func direct_write_wanted(_ fp: File, _ wpipe: Pipe, _ uio: UIO) -> Bool {
        let mindirect = pipe_mindirect.load()
        return uio.uio_segflg == .UIO_USERSPACE &&
            uio.uio_iov.pointee.iov_len >= mindirect &&
            wpipe.pipe_buffer.size >= mindirect &&
            !fp.f_flag.contains(.FNONBLOCK)
    }

    /// `pipe_build_write_buffer`'s chunk: the current iovec, at most the buffer's size.
    func direct_chunk_size(_ wpipe: Pipe, _ uio: UIO) -> Int {
        min(uio.uio_iov.pointee.iov_len, wpipe.pipe_buffer.size)
    }

    /// `pipe_destroy_write_buffer`: release the hold. Called with the pipe mutex held.
    func pipe_destroy_write_buffer(_ wpipe: Pipe) {
        precondition(wpipe.pipe_state.contains(.DIRECTW), "PIPE_DIRECTW not set")
        precondition(wpipe.pipe_pages.cnt == 0, "pipe map contains residual data")
        wpipe.pipe_state.remove(.DIRECTW)
        vm_page_unhold_pages(wpipe.pipe_pages)
        wpipe.pipe_pages.npages = 0
        wpipe.pipe_pages.pages = nil
        wpipe.pipe_pages.locked = false
        wpipe.pipe_pages.faulted = false
    }

    /// `pipe_clone_write_buffer`: on a signal, copy the unread rest of the held chunk into the
    /// pipe buffer so the writer may return. Called with the pipe mutex held. The copy is
    /// guarded as the reader's is; false when the writer's memory went away under it (the
    /// buffer then holds what arrived).
    @discardableResult
    func pipe_clone_write_buffer(_ wpipe: Pipe) -> Bool {
        precondition(wpipe.pipe_state.contains(.DIRECTW), "PIPE_DIRECTW not set")
        let size = wpipe.pipe_pages.cnt
        let pos = wpipe.pipe_pages.pos
        wpipe.pipe_pages.cnt = 0

        wpipe.pipe_buffer.in = size
        wpipe.pipe_buffer.out = 0
        wpipe.pipe_buffer.cnt = size

        wpipe.PIPE_UNLOCK()
        var iov = iovec(iov_base: wpipe.pipe_buffer.buffer, iov_len: size)
        var sourceFaulted = false
        let cloned = withUnsafeMutablePointer(to: &iov) { iovp in
            var uio = UIO(uio_iov: iovp, uio_iovcnt: 1, uio_resid: size,
                          uio_segflg: .UIO_SYSSPACE, uio_rw: .UIO_READ)
            _ = uiomove_fromphys(wpipe.pipe_pages.pages!, pos, size, &uio, sourceFaulted: &sourceFaulted)
            return size - uio.uio_resid
        }
        wpipe.PIPE_LOCK()
        if sourceFaulted {
            wpipe.pipe_buffer.in = cloned
            wpipe.pipe_buffer.cnt = cloned
        }
        cloneWrites.add(1)
        PipeEvent.clone.count()
        pipe_destroy_write_buffer(wpipe)
        return !sourceFaulted
    }

    /// `pipe_direct_write`: wait for the buffer to drain and for any other direct writer, hold
    /// the next chunk of the writer's memory, and sleep until the reader has consumed it.
    /// Beyond the seed, one line before the first sleep: `hold_ahead_before_sleep` (PageHolds.swift).
    /// Called with the pipe mutex and the I/O lock held; returns with both.
    func pipe_direct_write(_ fp: File, _ wpipe: Pipe, _ uio: inout UIO,
                           _ ahead: inout Range<Int>?) -> Errno? {
        var error: Errno?
        retry: while true {
            if wpipe.pipe_state.contains(.EOF) {
                error = .brokenPipe
                break retry  // error1
            }
            if wpipe.pipe_state.contains(.DIRECTW) {
                if wpipe.pipe_state.contains(.WANTR) {
                    wpipe.pipe_state.remove(.WANTR)
                    wakeup(wpipe)
                }
                pipeselwakeup(wpipe)
                wpipe.pipe_state.insert(.WANTW)
                pipeunlock(wpipe)
                error = msleep(wpipe.chan, wpipe, catch: true, .pipdww)
                _ = pipelock(wpipe, catch: false)
                if error != nil { break retry }
                continue retry
            }
            if wpipe.pipe_buffer.cnt > 0 {
                if wpipe.pipe_state.contains(.WANTR) {
                    wpipe.pipe_state.remove(.WANTR)
                    wakeup(wpipe)
                }
                pipeselwakeup(wpipe)
                wpipe.pipe_state.insert(.WANTW)
                pipeunlock(wpipe)
                error = msleep(wpipe.chan, wpipe, catch: true, .pipdwc)
                _ = pipelock(wpipe, catch: false)
                if error != nil { break retry }
                continue retry
            }

            error = pipe_build_write_buffer(wpipe, &uio, &ahead)
            if error != nil { break retry }

            var holdNext = true
            while wpipe.pipe_pages.cnt != 0 && !wpipe.pipe_state.contains(.EOF) {
                if wpipe.pipe_state.contains(.WANTR) {
                    wpipe.pipe_state.remove(.WANTR)
                    wakeup(wpipe)
                }
                pipeselwakeup(wpipe)
                wpipe.pipe_state.insert(.WANTW)
                pipeunlock(wpipe)
                if holdNext { holdNext = false; if hold_ahead_before_sleep(fp, wpipe, uio, &ahead) { continue } }
                error = msleep(wpipe.chan, wpipe, catch: true, .pipdwt)
                _ = pipelock(wpipe, catch: false)
                if error != nil { break }
            }

            if wpipe.pipe_pages.faulted {
                // (Beyond the seed: the reader's copy faulted, the writer's memory having gone
                // away under it; the reader kept what arrived.)
                pipe_destroy_write_buffer(wpipe)
                error = .badAddress
            } else if wpipe.pipe_state.contains(.EOF) {
                wpipe.pipe_pages.cnt = 0
                pipe_destroy_write_buffer(wpipe)
                pipeselwakeup(wpipe)
                error = .brokenPipe
            } else if (error == .interrupted || error == .restart) && wpipe.pipe_pages.cnt != 0 {
                // (The seed clones even when the reader has just emptied the pages; a clone of
                // 0 bytes would reset a buffer that a buffered writer filled meanwhile, so an
                // empty hold is destroyed instead: the one place this model departs from the
                // seed's order, to keep "no byte lost".)
                if !pipe_clone_write_buffer(wpipe) { error = .badAddress }
            } else {
                pipe_destroy_write_buffer(wpipe)
            }
            precondition(!wpipe.pipe_state.contains(.DIRECTW), "pipe leaked PIPE_DIRECTW")
            return error
        }
        // error1:
        wakeup(wpipe)
        return error
    }

    // MARK: - pipe_write

    /// `pipe_write`.
    func pipe_write(_ fp: File, _ uio: inout UIO) -> Errno? {
        fp.withData { rpipe in rpipe.withPeer { wpipe in pipe_write(fp, rpipe, wpipe, &uio) } }
    }

    private func pipe_write(_ fp: File, _ rpipe: Pipe, _ wpipe: Pipe, _ uio: inout UIO) -> Errno? {
        var error: Errno? = nil

        rpipe.PIPE_LOCK()
        if let e = pipelock(wpipe, catch: true) {
            rpipe.PIPE_UNLOCK()
            return e
        }
        // detect loss of pipe read side, issue SIGPIPE if lost.
        if wpipe.pipe_present != .ACTIVE || wpipe.pipe_state.contains(.EOF) {
            pipeunlock(wpipe)
            rpipe.PIPE_UNLOCK()
            return .brokenPipe
        }
        if let policy, let denied = policy.check(.write, fp.f_cred) {
            pipeunlock(wpipe)
            rpipe.PIPE_UNLOCK()
            return denied
        }
        wpipe.pipe_busy += 1

        // Choose a larger size if it's advantageous
        var desiredsize = max(SMALL_PIPE_SIZE, wpipe.pipe_buffer.size)
        while desiredsize < wpipe.pipe_buffer.cnt + uio.uio_resid {
            if piperesizeallowed.load() != 1 { break }
            if amountpipekva.load() > maxpipekva / 2 { break }
            if desiredsize == BIG_PIPE_SIZE { break }
            desiredsize = desiredsize * 2
        }

        // Choose a smaller size if we're in a OOM situation
        if amountpipekva.load() > (3 * maxpipekva) / 4 &&
            wpipe.pipe_buffer.size > SMALL_PIPE_SIZE &&
            wpipe.pipe_buffer.cnt <= SMALL_PIPE_SIZE &&
            piperesizeallowed.load() == 1 {
            desiredsize = SMALL_PIPE_SIZE
        }

        // Resize if the above determined that a new size was necessary
        if desiredsize != wpipe.pipe_buffer.size && !wpipe.pipe_state.contains(.DIRECTW) {
            wpipe.PIPE_UNLOCK()
            pipespace(wpipe, desiredsize)
            wpipe.PIPE_LOCK()
        }
        precondition(wpipe.pipe_buffer.size != 0)

        let orig_resid = uio.uio_resid
        var ahead: Range<Int>? = nil   // pages validated ahead (PageHolds.swift)
        var wentDirect = false         // counted once per write (PipeEvent.directWrite)

        while uio.uio_resid > 0 {
            if wpipe.pipe_state.contains(.EOF) {
                error = .brokenPipe
                break
            }
            // If the transfer is large, we can gain performance if we do process-to-process
            // copies directly. If the write is non-blocking, we don't use the direct write
            // mechanism. The direct write mechanism will detect the reader going away on us.
            if direct_write_wanted(fp, wpipe, uio) {
                if !wentDirect { wentDirect = true; PipeEvent.directWrite.count() }
                error = pipe_direct_write(fp, wpipe, &uio, &ahead)
                if error != nil { break }
                continue
            }

            // Pipe buffered writes cannot be coincidental with direct writes. We wait until
            // the currently executing direct write is completed before we start filling the
            // pipe buffer. We break out if a signal occurs or the reader goes away.
            if wpipe.pipe_pages.cnt != 0 {
                if wpipe.pipe_state.contains(.WANTR) {
                    wpipe.pipe_state.remove(.WANTR)
                    wakeup(wpipe)
                }
                pipeselwakeup(wpipe)
                wpipe.pipe_state.insert(.WANTW)
                pipeunlock(wpipe)
                error = msleep(wpipe.chan, rpipe, catch: true, .pipbww)
                _ = pipelock(wpipe, catch: false)
                if error != nil { break }
                continue
            }

            var space = wpipe.pipe_buffer.size - wpipe.pipe_buffer.cnt

            // Writes of size <= PIPE_BUF must be atomic.
            if space < uio.uio_resid && orig_resid <= PIPE_BUF {
                space = 0
            }

            if space > 0 {
                // Transfer size is minimum of uio transfer and free space in pipe buffer.
                let size = space > uio.uio_resid ? uio.uio_resid : space
                // First segment to transfer is minimum of transfer size and contiguous space
                // in pipe buffer. If first segment to transfer is less than the transfer size,
                // we've got a wraparound in the buffer.
                var segsize = wpipe.pipe_buffer.size - wpipe.pipe_buffer.in
                if segsize > size { segsize = size }

                // Transfer first segment
                error = uiomove_unlocked(rpipe, wpipe.pipe_buffer.buffer! + wpipe.pipe_buffer.in,
                                         segsize, &uio, streaming: streamingCopy)

                if error == nil && segsize < size {
                    precondition(wpipe.pipe_buffer.in + segsize == wpipe.pipe_buffer.size,
                                 "Pipe buffer wraparound disappeared")
                    PipeEvent.writeSplit.count()
                    // Transfer remaining part now, to support atomic writes. Wraparound
                    // happened.
                    error = uiomove_unlocked(rpipe, wpipe.pipe_buffer.buffer!, size - segsize, &uio,
                                             streaming: streamingCopy)
                }
                if error == nil {
                    wpipe.pipe_buffer.in += size
                    if wpipe.pipe_buffer.in >= wpipe.pipe_buffer.size {
                        precondition(wpipe.pipe_buffer.in == size - segsize + wpipe.pipe_buffer.size,
                                     "Expected wraparound bad")
                        wpipe.pipe_buffer.in = size - segsize
                    }
                    wpipe.pipe_buffer.cnt += size
                    precondition(wpipe.pipe_buffer.cnt <= wpipe.pipe_buffer.size,
                                 "Pipe buffer overflow")
                }
                if error != nil { break }
                continue
            } else {
                // If the "read-side" has been blocked, wake it up now.
                if wpipe.pipe_state.contains(.WANTR) {
                    wpipe.pipe_state.remove(.WANTR)
                    wakeup(wpipe)
                }

                // don't block on non-blocking I/O
                if fp.f_flag.contains(.FNONBLOCK) {
                    error = .wouldBlock
                    break
                }

                // We have no more space and have something to offer, wake up select/poll.
                pipeselwakeup(wpipe)

                wpipe.pipe_state.insert(.WANTW)
                pipeunlock(wpipe)
                error = msleep(wpipe.chan, rpipe, catch: true, .pipewr)
                _ = pipelock(wpipe, catch: false)
                if error != nil { break }
                continue
            }
        }

        wpipe.pipe_busy -= 1

        if wpipe.pipe_busy == 0 && wpipe.pipe_state.contains(.WANT) {
            wpipe.pipe_state.remove([.WANT, .WANTR])
            wakeup(wpipe)
        } else if wpipe.pipe_buffer.cnt > 0 {
            // If we have put any characters in the buffer, we wake up the reader.
            if wpipe.pipe_state.contains(.WANTR) {
                wpipe.pipe_state.remove(.WANTR)
                wakeup(wpipe)
            }
        }

        // Don't return EPIPE if any byte was written. EINTR and other interrupts are handled
        // by generic I/O layer. Do not pretend that I/O succeeded for obvious user error like
        // EFAULT.
        if uio.uio_resid != orig_resid && error == .brokenPipe {
            error = nil
        }

        if error == nil {
            pipe_timestamp(&wpipe.pipe_mtime)
        }

        // We have something to offer, wake up select/poll.
        if wpipe.pipe_buffer.cnt > 0 {
            pipeselwakeup(wpipe)
        }

        pipeunlock(wpipe)
        rpipe.PIPE_UNLOCK()
        return error
    }

    // MARK: - pipe_ioctl, pipe_stat, pipe_fill_kinfo

    /// `fsetown(owner, &pipe_sigio)` (kern_descrip.c): 0 clears the owner; any other owner
    /// must exist, or ESRCH. The engine's processes are the host's: an owner exists when the
    /// host has that process (owner > 0) or process group (owner < 0), as `kill(owner, 0)`
    /// finds it. SIGIO to it is recorded, never sent (`PipeSystem.sigioCount(owner:)`).
    /// Called without the pipe mutex, as the seed calls it.
    func fsetown(_ owner: Int32, _ mpipe: Pipe) -> Errno? {
        if owner != 0 && pb_owner_exists(owner) == 0 { return .noSuchProcess }
        mpipe.PIPE_LOCK()
        mpipe.pipe_sigio = owner
        mpipe.PIPE_UNLOCK()
        return nil
    }

    /// `pipe_ioctl`: the generic layer has already applied FIONBIO / FIOASYNC to `f_flag`.
    func pipe_ioctl(_ fp: File, _ cmd: UInt, _ data: inout Int32) -> Errno? {
        let mpipe = fp.f_data
        mpipe.PIPE_LOCK()
        if let policy, let denied = policy.check(.ioctl(cmd), fp.f_cred) {
            mpipe.PIPE_UNLOCK()
            return denied
        }
        var error: Errno? = nil
        switch cmd {
        case IoctlRequest.FIONBIO:
            break
        case IoctlRequest.FIOASYNC:
            if data != 0 {
                mpipe.pipe_state.insert(.ASYNC)
            } else {
                mpipe.pipe_state.remove(.ASYNC)
            }
        case IoctlRequest.FIONREAD:
            if !fp.f_flag.contains(.FREAD) {
                data = 0
                mpipe.PIPE_UNLOCK()
                return nil
            }
            if mpipe.pipe_pages.cnt != 0 {
                data = Int32(mpipe.pipe_pages.cnt)
            } else {
                data = Int32(mpipe.pipe_buffer.cnt)
            }
        case IoctlRequest.FIOSETOWN:
            mpipe.PIPE_UNLOCK()
            return fsetown(data, mpipe)
        case IoctlRequest.FIOGETOWN:
            data = mpipe.pipe_sigio
        case IoctlRequest.TIOCSPGRP:
            // This is deprecated, FIOSETOWN should be used instead. (C negates with
            // wraparound; Swift would trap on Int32.min.)
            mpipe.PIPE_UNLOCK()
            return fsetown(0 &- data, mpipe)
        case IoctlRequest.TIOCGPGRP:
            // This is deprecated, FIOGETOWN should be used instead.
            data = 0 &- mpipe.pipe_sigio
        default:
            error = .notTerminal
        }
        mpipe.PIPE_UNLOCK()
        return error
    }

    /// `pipe_stat` ("we shouldn't need locks here": the seed reads without the mutex; this
    /// model takes it, so that a stat racing a write is not a data race in Swift's eyes).
    func pipe_stat(_ fp: File) -> Result<PipeStat, Errno> {
        let pipe = fp.f_data
        if let policy {
            pipe.PIPE_LOCK()
            let denied = policy.check(.stat, fp.f_cred)
            pipe.PIPE_UNLOCK()
            if let denied { return .failure(denied) }
        }
        var ub = PipeStat()
        pipe.PIPE_LOCK()
        ub.st_mode = PipeStat.S_IFIFO
        ub.st_blksize = PAGE_SIZE
        if pipe.pipe_pages.cnt != 0 {
            ub.st_size = pipe.pipe_pages.cnt
        } else {
            ub.st_size = pipe.pipe_buffer.cnt
        }
        ub.st_blocks = howmany(ub.st_size, ub.st_blksize)
        ub.st_atim = pipe.pipe_atime
        ub.st_mtim = pipe.pipe_mtime
        ub.st_ctim = pipe.pipe_ctime
        pipe.PIPE_UNLOCK()
        ub.st_uid = fp.f_cred.uid
        ub.st_gid = fp.f_cred.gid
        ub.st_dev = pipedev_ino
        ub.st_ino = pipe.pipe_ino
        // Left as 0: st_nlink, st_rdev, st_flags, st_gen.
        return .success(ub)
    }

    /// `pipe_fill_kinfo`.
    func pipe_fill_kinfo(_ fp: File) -> KinfoPipe {
        let pi = fp.f_data
        pi.PIPE_LOCK()
        defer { pi.PIPE_UNLOCK() }
        return KinfoPipe(
            kf_pipe_addr: UInt(bitPattern: ObjectIdentifier(pi).hashValue),
            kf_pipe_peer: UInt(bitPattern: ObjectIdentifier(pi.pipe_peer).hashValue),
            kf_pipe_buffer_cnt: pi.pipe_buffer.cnt,
            kf_pipe_buffer_in: pi.pipe_buffer.in,
            kf_pipe_buffer_out: pi.pipe_buffer.out,
            kf_pipe_buffer_size: pi.pipe_buffer.size)
    }

    // MARK: - pipe_close, pipe_dtor, pipeclose

    /// `pipe_close` -> `pipe_dtor`.
    func pipe_close(_ fp: File) {
        pipe_dtor(fp.f_data)
    }

    /// `pipe_dtor`: funsetown, then pipeclose (and the peer's, for a FIFO).
    func pipe_dtor(_ dpipe: Pipe) {
        let peer: Pipe? = dpipe.isNamed ? dpipe.pipe_peer : nil
        dpipe.PIPE_LOCK(); dpipe.pipe_sigio = 0; dpipe.PIPE_UNLOCK()   // funsetown
        pipeclose(dpipe)
        if let peer {
            peer.PIPE_LOCK(); peer.pipe_sigio = 0; peer.PIPE_UNLOCK()
            pipeclose(peer)
        }
    }

    /// `pipeclose`: shut one end down, waking and waiting out whoever is inside it.
    func pipeclose(_ cpipe: Pipe) {
        cpipe.PIPE_LOCK()
        _ = pipelock(cpipe, catch: false)

        // If the other side is blocked, wake it up saying that we want to close it down.
        cpipe.pipe_state.insert(.EOF)
        while cpipe.pipe_busy > 0 {
            wakeup(cpipe)
            cpipe.pipe_state.insert(.WANT)
            pipeunlock(cpipe)
            _ = msleep(cpipe.chan, cpipe, catch: false, .pipecl)
            _ = pipelock(cpipe, catch: false)
        }

        pipeselwakeup(cpipe)

        // Disconnect from peer, if any.
        let ppipe = cpipe.pipe_peer
        if ppipe.pipe_present == .ACTIVE {
            ppipe.pipe_state.insert(.EOF)
            wakeup(ppipe)
            pipeselwakeup(ppipe)
        }

        // Mark this endpoint as free. Release kmem resources. We don't mark this endpoint as
        // unused until we've finished doing that, or the pipe might disappear out from under us.
        cpipe.PIPE_UNLOCK()
        pipe_free_kmem(cpipe)
        cpipe.PIPE_LOCK()
        cpipe.pipe_present = .CLOSING
        pipeunlock(cpipe)

        // knlist_clear(): knotes still attached become EV_EOF | EV_ONESHOT and are detached.
        cpipe.pipe_sel.knlist_clear()
        cpipe.pipe_present = .FINALIZED
        cpipe.pipe_sel.seldrain()

        // If both endpoints are now closed, release the memory for the pipe pair (the pair
        // object goes when the last reference to it does).
        if ppipe.pipe_present == .FINALIZED {
            pipes.add(-1)
        }
        cpipe.PIPE_UNLOCK()
    }
}
