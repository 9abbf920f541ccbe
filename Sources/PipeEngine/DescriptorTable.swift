import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// The descriptor table (`struct filedesc`): lowest free descriptor first, up to `limit`.
///
/// Locking: `mutex` serialises allocation and removal and guards `lowestFree`, `openCount`,
/// `credential` and `umask`. `fget` takes no lock at all, as FreeBSD's `fget_unlocked`: each
/// slot has a sequence counter (odd while the slot changes), and `fget` reads the file and
/// its count's address, takes a reference only if the count is not zero
/// (`refcount_acquire_if_not_zero`), and keeps it only if the sequence did not move; otherwise
/// it gives the reference back and looks again. That is safe because the count lives in
/// type-stable memory (`FileWords`). So a read or write touches only its own descriptor's
/// cache line and its file's. Slots are written only with `mutex` held, so under `mutex` a
/// slot may be read plainly. Slots live in chunks that are never moved or freed before the
/// table is.
final class DescriptorTable: @unchecked Sendable {
    /// One descriptor: its sequence counter, FD_CLOEXEC, the table's reference to the file
    /// and the file's words (read by `fget` without the file).
    struct Slot {
        var seq: UInt32 = 0
        var cloexec = false
        var file: UnsafeMutableRawPointer? = nil
        var words: UnsafeMutableRawPointer? = nil
        var pad: Int = 0        // 32 bytes: two slots per cache line
    }

    /// Slots per chunk. Within a chunk, consecutive descriptors are 16 slots (512 bytes)
    /// apart, so the two ends of a pipe (fd n and n+1) never share a cache line.
    private static let chunkShift = 6
    private static let chunkSlots = 1 << chunkShift

    private let mutex = PipeMutex()
    /// The chunk directory: `limit / chunkSlots` pointers, each nil until first used,
    /// published with a release store and read with an acquire load.
    private let chunks: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let chunkCount: Int
    private var lowestFree = 0
    private var openCount = 0
    /// The table's size: `maxfilesperproc` in this model (`PipeConfiguration.maxDescriptors`).
    let limit: Int
    /// `RLIMIT_NOFILE`, soft and hard, at most `limit`; guarded by `mutex`. New descriptors
    /// are below the soft limit; lowering it leaves those already open.
    private var softLimit: Int
    private var hardLimit: Int
    var credential = Credential.process
    var umask: UInt32 = 0o022
    /// Where a reference `fget` took by mistake is given back (`fdrop`, which may close).
    unowned(unsafe) var system: PipeSystem! = nil
    /// This kernel's file zone: the words of every file this table's kernel makes.
    let fileWords = FileWords()

    #if DEBUG
    /// Where a lagging `fgetRef` stands when `raceWindow` is called (tests only).
    enum RaceWindowPoint: Sendable { case beforeAcquire, afterAcquire }
    /// Tests only (debug builds): called by `fgetRef` at each point of its race window, so
    /// that a test can close and reuse the descriptor exactly there. Set it before the calls.
    nonisolated(unsafe) var raceWindow: ((RaceWindowPoint) -> Void)? = nil
    #endif

    init(limit: Int) {
        self.limit = limit
        softLimit = limit
        hardLimit = limit
        chunkCount = (limit + DescriptorTable.chunkSlots - 1) >> DescriptorTable.chunkShift
        chunks = .allocate(capacity: chunkCount)
        chunks.initialize(repeating: nil, count: chunkCount)
    }

    deinit {
        for c in 0..<chunkCount {
            guard let chunk = chunks[c] else { continue }
            chunk.assumingMemoryBound(to: Slot.self).deinitialize(count: DescriptorTable.chunkSlots)
            chunk.deallocate()
        }
        chunks.deallocate()
    }

    /// Open descriptors.
    var count: Int { withLock { openCount } }

    /// `RLIMIT_NOFILE`: (soft, hard).
    var rlimit: (soft: Int, hard: Int) { withLock { (softLimit, hardLimit) } }

    /// `kern_proc_setrlimit` for `RLIMIT_NOFILE`: both clamped to `maxfilesperproc` (the
    /// table's size); EINVAL when soft > hard, EPERM when an unprivileged caller raises the
    /// hard limit.
    func setRlimit(soft: Int, hard: Int, privileged: Bool) -> Errno? {
        guard soft >= 0, hard >= 0 else { return .invalidArgument }
        let soft = min(soft, limit), hard = min(hard, limit)
        return withLock {
            if soft > hard { return .invalidArgument }
            if hard > hardLimit && !privileged { return .operationNotPermitted }
            softLimit = soft
            hardLimit = hard
            return nil
        }
    }

    func withLock<T>(_ body: () -> T) -> T {
        mutex.lock()
        defer { mutex.unlock() }
        return body()
    }

    /// The slot of descriptor `i` (0 <= i < limit), or nil when its chunk was never used.
    @inline(__always)
    private func slot(_ i: Int) -> UnsafeMutablePointer<Slot>? {
        let raw = pb_acquire_load_ptr(chunks + (i >> DescriptorTable.chunkShift))
        guard let raw else { return nil }
        let j = i & (DescriptorTable.chunkSlots - 1)
        return raw.assumingMemoryBound(to: Slot.self) + ((j & 3) << 4 | j >> 2)
    }

    /// The slot of descriptor `i`, its chunk made if needed. Called with `mutex` held.
    private func makeSlot(_ i: Int) -> UnsafeMutablePointer<Slot> {
        if let existing = slot(i) { return existing }
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: DescriptorTable.chunkSlots * MemoryLayout<Slot>.stride, alignment: 64)
        raw.bindMemory(to: Slot.self, capacity: DescriptorTable.chunkSlots)
            .initialize(repeating: Slot(), count: DescriptorTable.chunkSlots)
        pb_release_store_ptr(chunks + (i >> DescriptorTable.chunkShift), raw)
        return slot(i)!
    }

    /// Changes a slot's file, as a writer of its sequence. Called with `mutex` held.
    private func publish(_ s: UnsafeMutablePointer<Slot>, _ file: FileObject?) {
        let seq = UnsafeMutableRawPointer(s).assumingMemoryBound(to: UInt32.self)
        pb_store_u32(seq, s.pointee.seq &+ 1)       // odd: changing
        let fields = UnsafeMutableRawPointer(s) + MemoryLayout<Slot>.offset(of: \.file)!
        let pointers = fields.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        pb_release_store_ptr(pointers, file.map { Unmanaged.passUnretained($0).toOpaque() })
        pb_release_store_ptr(pointers + 1, file.map { UnsafeMutableRawPointer($0.words) })
        pb_release_store_u32(seq, s.pointee.seq &+ 1)   // even: settled
    }

    /// `falloc_caps` + `finit`: the lowest free descriptor, or nil (EMFILE). The table takes a
    /// Swift reference to the file, which belongs to the file's own count (see `fgetRef`).
    func falloc(_ file: FileObject, cloexec: Bool) -> Int32? {
        mutex.lock()
        defer { mutex.unlock() }
        var fd = lowestFree
        while fd < softLimit, let s = slot(fd), s.pointee.file != nil { fd += 1 }
        guard fd < softLimit else { return nil }
        let s = makeSlot(fd)
        _ = Unmanaged.passRetained(file)
        s.pointee.cloexec = cloexec
        publish(s, file)
        lowestFree = fd + 1
        openCount += 1
        return Int32(fd)
    }

    /// `fget`: the file behind `fd` with a reference held, or nil (EBADF).
    func fget(_ fd: Int32) -> FileObject? { fgetRef(fd)?.takeUnretainedValue() }

    /// `fget_unlocked`: the file with a reference held, and no Swift retain — the Swift
    /// reference the table took in `falloc` belongs to the file's own count and is released
    /// by the `fdrop` that ends it, so the file outlives every holder of a reference.
    @inline(__always)
    func fgetRef(_ fd: Int32) -> Unmanaged<FileObject>? {
        let i = Int(fd)
        guard i >= 0, i < limit, let s = slot(i) else { return nil }
        let seqp = UnsafeMutableRawPointer(s).assumingMemoryBound(to: UInt32.self)
        let fields = (UnsafeMutableRawPointer(s) + MemoryLayout<Slot>.offset(of: \.file)!)
            .assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        while true {
            let seq = pb_acquire_load_u32(seqp)
            if seq & 1 != 0 { pb_cpu_relax(); continue }
            let file = pb_acquire_load_ptr(fields)
            let words = pb_acquire_load_ptr(fields + 1)
            guard let file, let words else {
                if pb_acquire_load_u32(seqp) == seq { return nil }
                continue
            }
            #if DEBUG
            raceWindow?(.beforeAcquire)
            #endif
            let count = words.assumingMemoryBound(to: UInt32.self) + 1
            if !pb_acquire_if_not_zero_u32(count) {
                // The file is being closed; the slot must have moved on.
                if pb_acquire_load_u32(seqp) == seq { return nil }
                continue
            }
            if pb_acquire_load_u32(seqp) == seq { return Unmanaged.fromOpaque(file) }
            // The slot changed meanwhile: the reference went to whoever owns these words now,
            // a file of this kernel (the zone is this kernel's), so this kernel drops it.
            #if DEBUG
            raceWindow?(.afterAcquire)
            #endif
            if let owner = FileWords.owner(words.assumingMemoryBound(to: UInt32.self)) {
                system.fdrop(owner)
            }
        }
    }

    /// `fdclose`: removes the entry (only if it still holds `expected`, when given); the
    /// caller drops the table's reference (`fdrop`).
    func remove(_ fd: Int32, ifStill expected: FileObject? = nil) -> FileObject? {
        mutex.lock()
        defer { mutex.unlock() }
        let i = Int(fd)
        guard i >= 0, i < limit, let s = slot(i), let raw = s.pointee.file else { return nil }
        if let expected, raw != Unmanaged.passUnretained(expected).toOpaque() { return nil }
        publish(s, nil)
        s.pointee.cloexec = false
        openCount -= 1
        if i < lowestFree { lowestFree = i }
        return Unmanaged<FileObject>.fromOpaque(raw).takeUnretainedValue()
    }

    func removeAll() -> [FileObject] {
        mutex.lock()
        defer { mutex.unlock() }
        var all: [FileObject] = []
        for c in 0..<chunkCount where chunks[c] != nil {
            for j in 0..<DescriptorTable.chunkSlots {
                let s = slot(c << DescriptorTable.chunkShift | j)!
                guard let raw = s.pointee.file else { continue }
                publish(s, nil)
                all.append(Unmanaged<FileObject>.fromOpaque(raw).takeUnretainedValue())
            }
        }
        openCount = 0
        lowestFree = 0
        return all
    }

    func cloexec(_ fd: Int32) -> Bool {
        mutex.lock()
        defer { mutex.unlock() }
        let i = Int(fd)
        guard i >= 0, i < limit, let s = slot(i) else { return false }
        return s.pointee.cloexec
    }

    func setCloexec(_ fd: Int32, _ on: Bool) {
        mutex.lock()
        defer { mutex.unlock() }
        let i = Int(fd)
        guard i >= 0, i < limit, let s = slot(i), s.pointee.file != nil else { return }
        s.pointee.cloexec = on
    }
}
