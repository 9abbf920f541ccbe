import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

// The data structures of FreeBSD's sys/sys/pipe.h (freebsd-src at revision
// f4f56ff43dbd30930f4b018e39ba2b9abf84551f, the revision of the seed sys_pipe.c), and the
// kernel-side objects around them (struct file, struct uio) that sys_pipe.c's routines take as
// arguments.
//
// Locking rules (the seed's, restated for this model):
//  - One `PipeMutex` per pair (`pp_mtx`, reached as `PIPE_MTX(pipe)`) guards every field of
//    both `Pipe`s of the pair, except where noted. It is held only for short sections and is
//    never held across an arena call (`pipespace_new`, `pipe_free_kmem`), a page hold, a
//    sleep, or a copy of user data (`uiomove`) larger than a page (`uiomove_unlocked`: the
//    seed drops it around every copy, which in user space never sleeps; why: the catalog
//    article FidelityAndDifferences).
//  - The real lock for I/O is the `PIPE_LOCKFL` flag, taken with `pipelock` and given back
//    with `pipeunlock` under the mutex. A reader holds its pipe's flag while it copies out; a
//    writer holds the flag of the pipe it writes into. So, per direction, only one thread
//    copies at a time: the buffer's bytes and the held pages may be copied without the mutex
//    while the flag is held, and its holder may read `pipe_buffer` / `pipe_pages` unlocked.
//    Those fields are written only with the mutex held (FIONREAD, poll, stat and the kqueue
//    filters read them under the mutex alone, without the flag) — where the seed writes them
//    unlocked in pipespace_new and pipe_free_kmem, this model takes the mutex to publish.
//  - `pipelock` may sleep: after it returns, every field must be read again.
//  - `pipe_busy` counts threads inside `pipe_read`/`pipe_write` on the pipe; `pipeclose` sets
//    `PIPE_EOF | PIPE_WANT` and sleeps until it drops to 0, so close never frees a buffer a
//    reader or writer is still using.
//  - The descriptor table has its own mutex, never taken with a pipe mutex held; `fget`
//    takes no lock (`fget_unlocked`: a sequence counter per descriptor and counts in
//    type-stable memory; see `DescriptorTable`). The KVA arena has its own mutex, taken with
//    no pipe mutex held.
//  - Hot paths borrow `Pipe`s (`File.withData`, `Pipe.withPeer`) instead of retaining them:
//    the pair owns both ends and every `File` owns the pair, so a borrowed end outlives the
//    system call that uses it.

/// `struct pipebuf`: the circular buffer.
struct PipeBuf {
    var cnt = 0                 // number of chars currently in buffer
    var `in` = 0                // in pointer
    var out = 0                 // out pointer
    var size = 0                // size of buffer
    var buffer: UnsafeMutableRawPointer? = nil  // kva of buffer (in the KVA arena)
}

/// `struct pipemapping`: the writer's held pages during a direct write.
/// `ms[]` (the page array) is modelled by the page-aligned start of the held range: the pages
/// are the writer's own, consecutive in its address space, and the reader copies from
/// `pages + pos` (`uiomove_fromphys(ms, pos, ...)`).
struct PipeMapping {
    var cnt = 0                 // number of chars held
    var pos = 0                 // current position of transfer (from the first held page)
    var npages = 0              // number of pages held
    var pages: UnsafeRawPointer? = nil
    var locked = false          // the held range is also mlock()ed
    var faulted = false         // the reader's copy faulted: the writer's memory went away
}

/// `struct pipe`: one direction of a pipe; it holds the data read through its own descriptor.
final class Pipe: @unchecked Sendable {
    var pipe_buffer = PipeBuf()
    var pipe_pages = PipeMapping()
    var pipe_atime = timespec()
    var pipe_mtime = timespec()
    var pipe_ctime = timespec()
    var pipe_sigio: Int32 = 0           // FIOSETOWN owner (pid > 0, process group < 0), 0: none
    /// The peer and the pair, held without reference counting: both ends and the mutex are
    /// owned by the `PipePair`, which outlives every use of its ends (each `File` holds it).
    /// The hot paths borrow them with `_withUnsafeGuaranteedRef`: a retain on an object that
    /// the other thread touches too is an atomic operation on a shared cache line.
    var pipe_peer_ref: Unmanaged<Pipe>? = nil
    unowned(unsafe) var pipe_pair: PipePair! = nil
    /// `PIPE_MTX(pipe)`: the pair's mutex.
    let PIPE_MTX: MutexWord
    var pipe_state: PipeState = []
    var pipe_type: UInt32 = 0           // PIPE_TYPE_NAMED
    var pipe_present: PipePresent = .none
    var pipe_waiters = 0                // threads sleeping in pipelock
    var pipe_busy = 0                   // threads inside pipe_read / pipe_write
    var pipe_wgen = 0                   // FIFO writer generation
    var pipe_ino: UInt64 = 0
    /// `msleep(cpipe, ...)`: readers, writers and closers wait here.
    let chan = WaitChannel()
    /// `msleep(&cpipe->pipe_waiters, ...)`: threads waiting for the I/O lock flag.
    let waitersChan = WaitChannel()
    /// `pipe_sel`: poll/select waiters and knotes.
    let pipe_sel = SelInfo()

    init(mutex: PipeMutex) { PIPE_MTX = mutex.ref }

    @inline(__always) var pipe_peer: Pipe { pipe_peer_ref!.takeUnretainedValue() }
    @inline(__always) func PIPE_LOCK() { PIPE_MTX.lock() }
    @inline(__always) func PIPE_UNLOCK() { PIPE_MTX.unlock() }
    @inline(__always) var kernel: PipeKernel { pipe_pair.kernel }

    static let PIPE_TYPE_NAMED: UInt32 = 0x001
    var isNamed: Bool { pipe_type & Pipe.PIPE_TYPE_NAMED != 0 }
    /// `PIPE_PEER(pipe)`: a FIFO is its own peer.
    @inline(__always) var PIPE_PEER: Pipe { isNamed ? self : pipe_peer }

    /// Runs `body` with `PIPE_PEER`, borrowed (no reference counting).
    @inline(__always)
    func withPeer<R>(_ body: (Pipe) -> R) -> R {
        if isNamed { return body(self) }
        return pipe_peer_ref!._withUnsafeGuaranteedRef(body)
    }
}

/// `struct pipepair`: both directions and the one mutex they share.
final class PipePair: @unchecked Sendable {
    let pp_mtx = PipeMutex()
    let pp_rpipe: Pipe
    let pp_wpipe: Pipe
    let kernel: PipeKernel

    /// `pipe_zone_ctor`: both ends zeroed, timestamped with one time, linked, ACTIVE.
    init(kernel: PipeKernel) {
        self.kernel = kernel
        pp_rpipe = Pipe(mutex: pp_mtx)
        pp_wpipe = Pipe(mutex: pp_mtx)
        let rpipe = pp_rpipe, wpipe = pp_wpipe
        pipe_timestamp(&rpipe.pipe_ctime)
        rpipe.pipe_atime = rpipe.pipe_ctime
        rpipe.pipe_mtime = rpipe.pipe_ctime
        wpipe.pipe_ctime = rpipe.pipe_ctime
        wpipe.pipe_atime = rpipe.pipe_ctime
        wpipe.pipe_mtime = rpipe.pipe_ctime
        rpipe.pipe_peer_ref = Unmanaged.passUnretained(wpipe)
        rpipe.pipe_pair = self
        wpipe.pipe_peer_ref = Unmanaged.passUnretained(rpipe)
        wpipe.pipe_pair = self
        rpipe.pipe_present = .ACTIVE
        wpipe.pipe_present = .ACTIVE
    }
}

/// `pipe_timestamp` -> `getnanotime`: the cheap, coarse clock.
@inline(__always) func pipe_timestamp(_ ts: inout timespec) { pb_coarse_realtime(&ts) }
