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

/// The credential a descriptor was opened with (`f_cred`).
public struct Credential: Sendable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
    /// The calling process's real uid and gid.
    public static var process: Credential { Credential(uid: getuid(), gid: getgid()) }
}

/// `f_type`: what a descriptor refers to.
enum DescriptorType { case DTYPE_PIPE, DTYPE_FIFO, DTYPE_KQUEUE }

/// `struct file`: what every descriptor has — its flags, its credential, its references.
class FileObject: @unchecked Sendable {
    let f_cred: Credential
    final let f_type: DescriptorType
    /// The file's words, in type-stable memory (`FileWords`): [0] `f_flag` (FREAD, FWRITE,
    /// FNONBLOCK, FASYNC), changed by fcntl/ioctl while other threads read it; [1] `f_count`:
    /// one reference for the descriptor table entry, one per system call in progress (`fget`
    /// / `fdrop`), `fo_close` when the last goes; [4...5] the file itself (`FileWords.owner`).
    final let words: UnsafeMutablePointer<UInt32>
    /// The kernel's file zone the words came from, and go back to.
    final let zone: FileWords

    init(type: DescriptorType, flags: FileFlags, cred: Credential, zone: FileWords) {
        f_type = type
        f_cred = cred
        self.zone = zone
        words = zone.take()
        // A lagging fget may still look at recycled words: atomics only, and the owner is
        // named before the count leaves 0 (only a non-zero count can be acquired).
        pb_store_u32(words, flags.rawValue)
        FileWords.setOwner(words, Unmanaged.passUnretained(self).toOpaque())
        pb_release_store_u32(words + 1, 1)
    }

    deinit { zone.give(words) }

    @inline(__always) final var f_flag: FileFlags { FileFlags(rawValue: pb_load_relaxed_u32(words)) }

    final func setFlag(_ flag: FileFlags, _ on: Bool) {
        if on {
            _ = pb_fetch_or_u32(words, flag.rawValue)
        } else {
            _ = pb_fetch_and_u32(words, ~flag.rawValue)
        }
    }

    /// Drops a reference; true when it was the last (the caller then runs `fo_close`).
    @inline(__always) final func drop() -> Bool { pb_fetch_sub_u32(words + 1, 1) == 1 }
}

/// Type-stable memory for the files' words, as FreeBSD's file zone is: a block is recycled,
/// never freed, so a lock-free `fget` that raced a `close` and a free still finds a count there
/// (of the file that now owns the block, named in the block) and can give it back. A cache line
/// per block: the two ends of a pipe are made together, and their counts, bumped by every
/// call, must not share a line between two threads.
///
/// One zone per kernel (`PipeSystem`), as each FreeBSD kernel has its own file zone: a block
/// is recycled only to another file of the same kernel, so the file whose count a lagging
/// `fget` took is always one of the calling kernel's own, and the `fdrop` that gives it back
/// (and may run `fo_close`) runs in that file's kernel. Every file keeps its zone alive; the
/// blocks are freed with the zone, when no file and no table is left to read them.
final class FileWords: @unchecked Sendable {
    private let lock = PipeMutex()
    private var free: [UnsafeMutablePointer<UInt32>] = []
    /// Every block this zone ever made, freed in deinit.
    private var all: [UnsafeMutablePointer<UInt32>] = []

    init() {}

    deinit {
        for words in all { UnsafeMutableRawPointer(words).deallocate() }
    }

    func take() -> UnsafeMutablePointer<UInt32> {
        lock.lock()
        defer { lock.unlock() }
        if let recycled = free.popLast() { return recycled }
        let words = allocateCacheLine(of: UInt32.self)
        all.append(words)
        return words
    }

    func give(_ words: UnsafeMutablePointer<UInt32>) {
        FileWords.setOwner(words, nil)
        lock.lock()
        free.append(words)
        lock.unlock()
    }

    /// The file whose words these are (valid while a reference on its count is held).
    @inline(__always)
    static func owner(_ words: UnsafeMutablePointer<UInt32>) -> Unmanaged<FileObject>? {
        pb_acquire_load_ptr(ownerField(words)).map { Unmanaged<FileObject>.fromOpaque($0) }
    }

    static func setOwner(_ words: UnsafeMutablePointer<UInt32>, _ owner: UnsafeMutableRawPointer?) {
        pb_release_store_ptr(ownerField(words), owner)
    }

    /// Words [4...5]: the owning file's address.
    @inline(__always)
    private static func ownerField(_ words: UnsafeMutablePointer<UInt32>) -> UnsafeMutablePointer<UnsafeMutableRawPointer?> {
        UnsafeMutableRawPointer(words + 4).assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
    }
}

/// A pipe or FIFO descriptor (`DTYPE_PIPE` / `DTYPE_FIFO`): `f_data` is the pipe it reads.
final class File: FileObject, @unchecked Sendable {
    let pair: PipePair
    /// `f_vnode`: the FIFO's node, for a FIFO descriptor; nil for an anonymous pipe.
    let vnode: FifoNode?
    /// `f_pipegen`: the FIFO writer generation this reader has seen (POLLINIGNEOF).
    var f_pipegen = 0
    /// `f_data`: &pp_rpipe (fd[0], every FIFO) or &pp_wpipe, unretained (`pair` keeps it).
    private let f_data_ref: Unmanaged<Pipe>

    init(pair: PipePair, forward: Bool, flags: FileFlags, cred: Credential, zone: FileWords,
         vnode: FifoNode? = nil) {
        self.pair = pair
        f_data_ref = Unmanaged.passUnretained(forward ? pair.pp_rpipe : pair.pp_wpipe)
        self.vnode = vnode
        super.init(type: vnode == nil ? .DTYPE_PIPE : .DTYPE_FIFO, flags: flags, cred: cred, zone: zone)
    }

    @inline(__always) var f_data: Pipe { f_data_ref.takeUnretainedValue() }

    /// Runs `body` with `f_data`, borrowed (no reference counting; `pair` keeps it alive).
    @inline(__always)
    func withData<R>(_ body: (Pipe) -> R) -> R { f_data_ref._withUnsafeGuaranteedRef(body) }
}

/// `enum uio_rw`.
enum UIORW { case UIO_READ, UIO_WRITE }
/// `enum uio_seg`: where the iovecs point.
enum UIOSeg { case UIO_USERSPACE, UIO_SYSSPACE }

/// `struct uio`: the caller's buffers, as the kernel walks them. `uio_iov` points into the
/// kernel's own copy of the iovec array (`copyinuio`), never into the caller's.
struct UIO {
    var uio_iov: UnsafeMutablePointer<iovec>
    var uio_iovcnt: Int
    var uio_offset = 0
    var uio_resid: Int
    var uio_segflg: UIOSeg = .UIO_USERSPACE
    let uio_rw: UIORW
}

/// `uiomove(cp, n, uio)`: copies between a kernel buffer and the uio, advancing it.
/// A null base with a non-zero length is EFAULT (the one bad address a user-space copy can
/// detect without a system call; see the catalog article FidelityAndDifferences). With
/// `streaming`, copies into `cp` of at least `streamingCopyMin` bytes use non-temporal stores
/// (`CopyStrategy.streaming`).
@inline(__always)
func uiomove(_ cp: UnsafeMutableRawPointer, _ n: Int, _ uio: inout UIO, streaming: Bool = false) -> Errno? {
    var cp = cp, n = n
    while n > 0 && uio.uio_resid > 0 {
        var cnt = uio.uio_iov.pointee.iov_len
        if cnt == 0 {
            uio.uio_iov += 1
            uio.uio_iovcnt -= 1
            continue
        }
        if cnt > n { cnt = n }
        guard let base = uio.uio_iov.pointee.iov_base else { return .badAddress }
        switch uio.uio_rw {
        case .UIO_READ: memcpy(base, cp, cnt)
        case .UIO_WRITE:
            if streaming && cnt >= streamingCopyMin { pb_copy_streaming(cp, base, cnt) } else { memcpy(cp, base, cnt) }
        }
        uio.uio_iov.pointee.iov_base = base + cnt
        uio.uio_iov.pointee.iov_len -= cnt
        uio.uio_resid -= cnt
        uio.uio_offset += cnt
        cp += cnt
        n -= cnt
    }
    return nil
}

/// `uiomove_fromphys(ms, offset, n, uio)`: copies from held pages (here: `pages + offset`).
@inline(__always)
func uiomove_fromphys(_ pages: UnsafeRawPointer, _ offset: Int, _ n: Int,
                      _ uio: inout UIO) -> Errno? {
    uiomove(UnsafeMutableRawPointer(mutating: pages + offset), n, &uio)
}
