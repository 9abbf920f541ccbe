import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

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
