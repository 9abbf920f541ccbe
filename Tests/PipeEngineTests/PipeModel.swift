import Glibc
@testable import PipeEngine

// A sequential reference model of the seed's decisions (FreeBSD's sys/kern/sys_pipe.c,
// freebsd-src at f4f56ff43dbd30930f4b018e39ba2b9abf84551f) for single-threaded, non-blocking
// use of one PipeSystem: what ModelTests.swift drives against the real engine. It knows nothing of the engine's code; every rule below is the seed's,
// with the seed routine named.
//
// Orientation (pipe_paircreate): pair k has two `struct pipe`s, rpipe (index 2k, read through
// fd[0], the PIPE_SIZE buffer) and wpipe (2k+1, read through fd[1], SMALL_PIPE_SIZE). A write
// on a descriptor goes into the *peer* of the pipe it reads (fd[1] -> fd[0] data lives in
// rpipe's buffer). Every descriptor here is O_NONBLOCK, so pipe_write never takes the direct
// path (the `!(fp->f_flag & FNONBLOCK)` test), whatever pipe_mindirect is.
//
// Data: each buffer's stream of bytes is a window of one shared pseudo-random source
// (`ModelBytes`), so "the byte-exact queue of what was written" is the source range
// [written - cnt, written) of that stream: a read must return exactly the next bytes.

/// SplitMix64: deterministic, replayable from one 64-bit seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<n (n > 0); our own, so the sequences never depend on the stdlib's.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func inRange(_ lo: Int, _ hi: Int) -> Int { lo + below(hi - lo + 1) }
}

/// The shared source of written bytes: `period` pseudo-random bytes (a prime length, so no
/// buffer size divides it), followed by a copy of its first `tail` bytes so that any window
/// of up to `tail` bytes is contiguous.
final class ModelBytes: @unchecked Sendable {
    static let period = 1_048_573
    static let tail = 128 * 1024
    let base: UnsafeMutableRawPointer
    init() {
        base = .allocate(byteCount: ModelBytes.period + ModelBytes.tail, alignment: 64)
        var rng = SplitMix64(seed: 0x5049_5045_4245_4E43)
        var i = 0
        while i < ModelBytes.period + ModelBytes.tail {
            var word = rng.next()
            let n = min(8, ModelBytes.period + ModelBytes.tail - i)
            memcpy(base + i, &word, n)
            i += n
        }
        memcpy(base + ModelBytes.period, base, ModelBytes.tail)
    }
    /// Byte `offset` of stream `stream` and the `tail` bytes after it, contiguous.
    func pointer(stream: Int, offset: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(base + (stream + offset) % ModelBytes.period)
    }
    static let shared = ModelBytes()
}

/// `pipe_map`'s first-fit allocator, in pages: the lowest free range that fits.
struct ModelArena: Equatable {
    var free: [(page: Int, pages: Int)]
    init(bytes: Int) { free = [(0, bytes / PAGE_SIZE)] }

    static func == (a: ModelArena, b: ModelArena) -> Bool {
        a.free.count == b.free.count && zip(a.free, b.free).allSatisfy { $0 == $1 }
    }

    /// Byte offset of the allocation, or nil when no free range is large enough.
    mutating func allocate(_ bytes: Int) -> Int? {
        let pages = bytes / PAGE_SIZE
        guard let i = free.firstIndex(where: { $0.pages >= pages }) else { return nil }
        let page = free[i].page
        if free[i].pages == pages { free.remove(at: i) } else { free[i] = (page + pages, free[i].pages - pages) }
        return page * PAGE_SIZE
    }

    mutating func release(_ offset: Int, _ bytes: Int) {
        let page = offset / PAGE_SIZE, pages = bytes / PAGE_SIZE
        var i = free.firstIndex(where: { $0.page > page }) ?? free.count
        var start = page, count = pages
        if i > 0, free[i - 1].page + free[i - 1].pages == start {
            i -= 1
            start = free[i].page
            count += free[i].pages
            free.remove(at: i)
        }
        if i < free.count, start + count == free[i].page {
            count += free[i].pages
            free.remove(at: i)
        }
        free.insert((start, count), at: i)
    }

    /// As `PipeSystem.arenaFreeExtents` reports them: (offset, bytes), lowest first.
    var extents: [(offset: Int, bytes: Int)] { free.map { ($0.page * PAGE_SIZE, $0.pages * PAGE_SIZE) } }
}

/// One `struct pipe` of the model.
struct ModelPipe {
    var active = true            // pipe_present == PIPE_ACTIVE
    var eof = false              // PIPE_EOF
    var size: Int                // pipe_buffer.size
    var offset: Int              // where pipe_buffer.buffer lies in the arena
    var cnt = 0                  // pipe_buffer.cnt
    var inPos = 0                // pipe_buffer.in
    var outPos = 0               // pipe_buffer.out
    var ino: Int                 // pipe_ino
    let stream: Int              // where this buffer's byte stream starts in ModelBytes
    var written = 0              // bytes ever accepted into this buffer
    var readPos: Int { written - cnt }
}

/// One operation of a sequence. Descriptors are numbers, so a shrunk sequence stays
/// meaningful (an operation on a descriptor no longer open expects EBADF).
enum ModelOp: CustomStringConvertible, Sendable {
    case pipe2(cloexec: Bool)                  // always O_NONBLOCK
    case write(fd: Int32, count: Int)
    case read(fd: Int32, count: Int)
    case close(fd: Int32)
    case fionread(fd: Int32)
    case fstat(fd: Int32)
    case kinfo(fd: Int32)
    case poll([PollFD])                        // timeout 0
    case kevent(fd: Int32, filter: Int16)      // a fresh kqueue, EV_ADD|EV_ONESHOT, timeout 0, closed
    case setResizeAllowed(Int)                 // sysctl kern.ipc.piperesizeallowed=
    case setMindirect(Int)                     // sysctl kern.ipc.pipe_mindirect=

    var description: String {
        switch self {
        case .pipe2(let c): return "pipe2(O_NONBLOCK\(c ? " | O_CLOEXEC" : ""))"
        case .write(let fd, let n): return "write(fd \(fd), \(n) bytes)"
        case .read(let fd, let n): return "read(fd \(fd), \(n) bytes)"
        case .close(let fd): return "close(fd \(fd))"
        case .fionread(let fd): return "ioctl(fd \(fd), FIONREAD)"
        case .fstat(let fd): return "fstat(fd \(fd))"
        case .kinfo(let fd): return "kinfo(fd \(fd))"
        case .poll(let fds):
            return "poll([" + fds.map { "fd \($0.fd): \(pollBits($0.events))" }.joined(separator: ", ") + "], 0)"
        case .kevent(let fd, let filter):
            return "kevent(new kqueue, EV_ADD|EV_ONESHOT \(filter == Kevent.EVFILT_READ ? "EVFILT_READ" : "EVFILT_WRITE") fd \(fd), timeout 0)"
        case .setResizeAllowed(let v): return "sysctl kern.ipc.piperesizeallowed=\(v)"
        case .setMindirect(let v): return "sysctl kern.ipc.pipe_mindirect=\(v)"
        }
    }
}

func pollBits(_ bits: Int16) -> String {
    let names: [(Int16, String)] = [(PollEvents.POLLIN, "IN"), (PollEvents.POLLOUT, "OUT"),
        (PollEvents.POLLRDNORM, "RDNORM"), (PollEvents.POLLWRNORM, "WRNORM"),
        (PollEvents.POLLHUP, "HUP"), (PollEvents.POLLNVAL, "NVAL"), (PollEvents.POLLERR, "ERR")]
    let set = names.filter { bits & $0.0 != 0 }.map(\.1)
    return set.isEmpty ? "0" : set.joined(separator: "|")
}

/// What one operation returned: an errno, or values (a count, a pair of descriptors, stat
/// fields, poll's result and revents, a kevent's fields).
struct Outcome: Equatable, CustomStringConvertible {
    var errno: Errno?
    var values: [Int]
    static func ok(_ v: Int...) -> Outcome { Outcome(errno: nil, values: v) }
    static func fail(_ e: Errno) -> Outcome { Outcome(errno: e, values: []) }
    /// Not compared (an operation outside the model's scope).
    static let unchecked = Outcome(errno: nil, values: [Int.min])
    var description: String {
        if let errno { return errno.name }
        return values.count == 1 ? "\(values[0])" : "\(values)"
    }
}

/// The model of one PipeSystem.
struct PipeModel {
    let maxpipekva: Int
    let PIPE_SIZE = DEFAULT_PIPE_SIZE
    let BIG_PIPE_SIZE = DEFAULT_BIG_PIPE_SIZE
    let SMALL_PIPE_SIZE = DEFAULT_SMALL_PIPE_SIZE

    var arena: ModelArena
    var pipes: [ModelPipe] = []                // pair k: rpipe 2k, wpipe 2k+1
    var fds: [Int32: Int] = [:]                // descriptor -> the pipe it reads
    var nextIno = 1                            // alloc_unr64(&pipeino_unr), from 1
    var nextStream = 0

    // sysctls
    var amountpipekva = 0
    var pipefragretry = 0
    var pipeallocfail = 0
    var piperesizefail = 0
    var piperesizeallowed = 1
    var pipe_mindirect = PIPE_MINDIRECT
    var livePairs = 0                          // engine.pipes
    var resizes = 0                            // engine.resizes (reallocations of a buffer)
    var sigpipes = 0                           // SIGPIPEs delivered to the calling thread

    init(maxpipekva: Int) {
        self.maxpipekva = maxpipekva
        arena = ModelArena(bytes: maxpipekva)
    }

    var openFDs: [Int32] { fds.keys.sorted() }

    // MARK: - pipespace_new, pipe_free_kmem

    /// `pipespace_new` for a pipe without a buffer: the retry at SMALL_PIPE_SIZE on
    /// fragmentation, `pipeallocfail` when even that fails. Returns (offset, size).
    mutating func pipespaceNew(_ requested: Int) -> (offset: Int, size: Int)? {
        var size = round_page(requested)
        while true {
            if let offset = arena.allocate(size) {
                amountpipekva += size
                return (offset, size)
            }
            if size > SMALL_PIPE_SIZE {
                size = SMALL_PIPE_SIZE
                pipefragretry += 1
                continue
            }
            pipeallocfail += 1
            return nil
        }
    }

    /// `pipespace_new` on a pipe that has a buffer: the new one is found while the old one is
    /// still allocated; on failure `piperesizefail` and the old buffer (and data) stay.
    mutating func resize(_ i: Int, _ requested: Int) {
        let size = round_page(max(requested, pipes[i].cnt))
        guard let offset = arena.allocate(size) else {
            piperesizefail += 1
            return
        }
        resizes += 1
        freeKmem(i)
        pipes[i].offset = offset
        pipes[i].size = size
        pipes[i].inPos = pipes[i].cnt
        pipes[i].outPos = 0
        amountpipekva += size
    }

    /// `pipe_free_kmem`.
    mutating func freeKmem(_ i: Int) {
        guard pipes[i].size > 0 else { return }
        arena.release(pipes[i].offset, pipes[i].size)
        amountpipekva -= pipes[i].size
        pipes[i].size = 0
    }

    /// The lowest free descriptor (`fdalloc`).
    func lowestFreeFD(excluding other: Int32? = nil) -> Int32 {
        var fd: Int32 = 0
        while fds[fd] != nil || fd == other { fd += 1 }
        return fd
    }

    // MARK: - the operations

    /// `pipe2(O_NONBLOCK)`: `pipe_paircreate` (pipe_create of rpipe large, wpipe small).
    mutating func pipe2() -> Outcome {
        let forward = amountpipekva > maxpipekva / 2 ? SMALL_PIPE_SIZE : PIPE_SIZE
        guard let r = pipespaceNew(forward) else { return .fail(.noMemory) }
        let rino = nextIno
        nextIno += 1
        guard let w = pipespaceNew(SMALL_PIPE_SIZE) else {
            // pipe_free_kmem(rpipe); the inode number stays used.
            arena.release(r.offset, r.size)
            amountpipekva -= r.size
            return .fail(.noMemory)
        }
        let wino = nextIno
        nextIno += 1
        let k = pipes.count
        pipes.append(ModelPipe(size: r.size, offset: r.offset, ino: rino, stream: streamBase()))
        pipes.append(ModelPipe(size: w.size, offset: w.offset, ino: wino, stream: streamBase()))
        livePairs += 1
        let fd0 = lowestFreeFD()
        fds[fd0] = k
        let fd1 = lowestFreeFD()
        fds[fd1] = k + 1
        return .ok(Int(fd0), Int(fd1))
    }

    private mutating func streamBase() -> Int {
        defer { nextStream += 1 }
        return (nextStream &* 262_147 &+ 7919) % ModelBytes.period
    }

    /// Where the bytes a write on `fd` would send come from (any pointer when it cannot).
    func writeSource(_ fd: Int32) -> UnsafeRawPointer {
        guard let i = fds[fd] else { return UnsafeRawPointer(ModelBytes.shared.base) }
        let d = pipes[i ^ 1]
        return ModelBytes.shared.pointer(stream: d.stream, offset: d.written)
    }

    /// What a read on `fd` must return next (valid before the read is applied).
    func readExpectation(_ fd: Int32) -> UnsafeRawPointer? {
        guard let i = fds[fd] else { return nil }
        return ModelBytes.shared.pointer(stream: pipes[i].stream, offset: pipes[i].readPos)
    }

    /// `pipe_write`, non-blocking.
    mutating func write(_ fd: Int32, _ n: Int) -> Outcome {
        guard let me = fds[fd] else { return .fail(.badFileDescriptor) }
        let d = me ^ 1
        // detect loss of pipe read side, issue SIGPIPE if lost (0-byte writes too).
        if !pipes[d].active || pipes[d].eof {
            sigpipes += 1
            return .fail(.brokenPipe)
        }
        // Choose a larger size if it's advantageous
        var desired = max(SMALL_PIPE_SIZE, pipes[d].size)
        while desired < pipes[d].cnt + n {
            if piperesizeallowed != 1 { break }
            if amountpipekva > maxpipekva / 2 { break }
            if desired == BIG_PIPE_SIZE { break }
            desired *= 2
        }
        // Choose a smaller size if we're in a OOM situation
        if amountpipekva > (3 * maxpipekva) / 4 && pipes[d].size > SMALL_PIPE_SIZE &&
            pipes[d].cnt <= SMALL_PIPE_SIZE && piperesizeallowed == 1 {
            desired = SMALL_PIPE_SIZE
        }
        if desired != pipes[d].size { resize(d, desired) }
        if n == 0 { return .ok(0) }
        var space = pipes[d].size - pipes[d].cnt
        // Writes of size <= PIPE_BUF must be atomic.
        if space < n && n <= PIPE_BUF { space = 0 }
        if space == 0 { return .fail(.wouldBlock) }       // nothing moved: EAGAIN
        let moved = min(space, n)                          // then EAGAIN: a short count
        pipes[d].inPos = (pipes[d].inPos + moved) % pipes[d].size
        pipes[d].cnt += moved
        pipes[d].written += moved
        return .ok(moved)
    }

    /// `read` (a 0-byte read never enters the pipe) -> `pipe_read`, non-blocking.
    mutating func read(_ fd: Int32, _ n: Int) -> Outcome {
        guard let i = fds[fd] else { return .fail(.badFileDescriptor) }
        if n == 0 { return .ok(0) }
        if amountpipekva > (3 * maxpipekva) / 4 && pipes[i].size > SMALL_PIPE_SIZE &&
            pipes[i].cnt <= SMALL_PIPE_SIZE && piperesizeallowed == 1 {
            resize(i, SMALL_PIPE_SIZE)
        }
        if pipes[i].cnt > 0 {
            let moved = min(pipes[i].cnt, n)
            pipes[i].outPos = (pipes[i].outPos + moved) % pipes[i].size
            pipes[i].cnt -= moved
            if pipes[i].cnt == 0 {
                pipes[i].inPos = 0
                pipes[i].outPos = 0
            }
            return .ok(moved)
        }
        if pipes[i].eof { return .ok(0) }
        return .fail(.wouldBlock)
    }

    /// `close` -> `pipeclose`.
    mutating func close(_ fd: Int32) -> Outcome {
        guard let i = fds.removeValue(forKey: fd) else { return .fail(.badFileDescriptor) }
        pipes[i].eof = true
        let peer = i ^ 1
        if pipes[peer].active { pipes[peer].eof = true }
        freeKmem(i)
        pipes[i].active = false
        if !pipes[peer].active { livePairs -= 1 }
        return .ok(0)
    }

    /// FIONREAD: the buffer's count (no direct write is ever pending here).
    func fionread(_ fd: Int32) -> Outcome {
        guard let i = fds[fd] else { return .fail(.badFileDescriptor) }
        return .ok(pipes[i].cnt)
    }

    /// `pipe_stat`: st_size, st_blocks, st_blksize, st_mode, st_ino.
    func fstat(_ fd: Int32) -> Outcome {
        guard let i = fds[fd] else { return .fail(.badFileDescriptor) }
        let p = pipes[i]
        return .ok(p.cnt, howmany(p.cnt, PAGE_SIZE), PAGE_SIZE, Int(PipeStat.S_IFIFO), p.ino)
    }

    /// `pipe_fill_kinfo`: cnt, in, out, size.
    func kinfo(_ fd: Int32) -> Outcome {
        guard let i = fds[fd] else { return .fail(.badFileDescriptor) }
        let p = pipes[i]
        return .ok(p.cnt, p.inPos, p.outPos, p.size)
    }

    /// `poll(fds, n, 0)` -> `pipe_poll`, with poll's POLLNVAL and POLLOUT-under-POLLHUP rules.
    /// Values: the count, then each revents.
    func poll(_ list: [PollFD]) -> Outcome {
        typealias P = PollEvents
        var n = 0
        var revents: [Int] = []
        for entry in list {
            var r: Int16 = 0
            if entry.fd < 0 {
                r = 0
            } else if let i = fds[entry.fd] {
                let me = pipes[i], peer = pipes[i ^ 1]
                let ev = entry.events
                if ev & (P.POLLIN | P.POLLRDNORM) != 0 && me.cnt > 0 {
                    r |= ev & (P.POLLIN | P.POLLRDNORM)
                }
                if ev & (P.POLLOUT | P.POLLWRNORM) != 0 {
                    if !peer.active || peer.eof || peer.size - peer.cnt >= PIPE_BUF || peer.size == 0 {
                        r |= ev & (P.POLLOUT | P.POLLWRNORM)
                    }
                }
                if me.eof {
                    r |= ev & (P.POLLIN | P.POLLRDNORM)
                    if !peer.active || peer.eof { r |= P.POLLHUP }
                }
                if r & P.POLLHUP != 0 { r &= ~(P.POLLOUT | P.POLLWRNORM) }
            } else {
                r = P.POLLNVAL
            }
            if r != 0 { n += 1 }
            revents.append(Int(r))
        }
        return Outcome(errno: nil, values: [n] + revents)
    }

    /// `kevent` with one EV_ADD|EV_ONESHOT change and room for 4 events, timeout 0.
    /// Values: events returned, then for the first one filter, flags & (EV_EOF|EV_ERROR), data.
    func kevent(_ fd: Int32, _ filter: Int16) -> Outcome {
        // The new kqueue takes the lowest free descriptor: a change naming it is about a
        // kqueue, not a pipe, and out of this model's scope.
        if fd == lowestFreeFD() { return Outcome.unchecked }
        guard let i = fds[fd] else {
            return .ok(1, Int(filter), Int(Kevent.EV_ERROR), Int(Errno.badFileDescriptor.rawValue))
        }
        let me = pipes[i], peer = pipes[i ^ 1]
        if filter == Kevent.EVFILT_READ {
            // filt_piperead
            if me.eof { return .ok(1, Int(filter), Int(Kevent.EV_EOF), me.cnt) }
            return me.cnt > 0 ? .ok(1, Int(filter), 0, me.cnt) : .ok(0)
        }
        // pipe_kqfilter: EPIPE when the other end is closed; then filt_pipewrite on the peer.
        if !peer.active {
            return .ok(1, Int(filter), Int(Kevent.EV_ERROR), Int(Errno.brokenPipe.rawValue))
        }
        let space = peer.size - peer.cnt
        if peer.eof { return .ok(1, Int(filter), Int(Kevent.EV_EOF), space) }
        return space >= PIPE_BUF ? .ok(1, Int(filter), 0, space) : .ok(0)
    }

    mutating func setResizeAllowed(_ v: Int) -> Outcome {
        piperesizeallowed = v
        return .ok(0)
    }

    /// `sysctl_handle_pipe_mindirect`: EINVAL at or below PIPE_BUF.
    mutating func setMindirect(_ v: Int) -> Outcome {
        if v <= PIPE_BUF { return .fail(.invalidArgument) }
        pipe_mindirect = v
        return .ok(0)
    }

    mutating func apply(_ op: ModelOp) -> Outcome {
        switch op {
        case .pipe2: return pipe2()
        case .write(let fd, let n): return write(fd, n)
        case .read(let fd, let n): return read(fd, n)
        case .close(let fd): return close(fd)
        case .fionread(let fd): return fionread(fd)
        case .fstat(let fd): return fstat(fd)
        case .kinfo(let fd): return kinfo(fd)
        case .poll(let list): return poll(list)
        case .kevent(let fd, let filter): return kevent(fd, filter)
        case .setResizeAllowed(let v): return setResizeAllowed(v)
        case .setMindirect(let v): return setMindirect(v)
        }
    }

    // MARK: - the state compared after every step

    /// The global values the engine must agree on after every operation, in
    /// `PipeModel.counterNames` order.
    static let counterNames = [
        "kern.ipc.pipekva", "kern.ipc.pipefragretry", "kern.ipc.pipeallocfail",
        "kern.ipc.piperesizefail", "engine.pipes", "kern.ipc.piperesizeallowed",
        "kern.ipc.pipe_mindirect", "engine.resizes", "engine.direct_writes", "engine.held_pages",
        "openDescriptors", "arenaAllocatedBytes", "SIGPIPEs",
    ]

    /// The state compared after every step: the counters, then the arena's free extents
    /// (count, then offset and bytes of each), then for each open descriptor (lowest first)
    /// fd, buffer size, cnt, in, out.
    func snapshot() -> [Int] {
        var s = [amountpipekva, pipefragretry, pipeallocfail, piperesizefail, livePairs,
                 piperesizeallowed, pipe_mindirect, resizes, 0, 0, fds.count, amountpipekva,
                 sigpipes]
        s.append(arena.free.count)
        for e in arena.free {
            s.append(e.page * PAGE_SIZE)
            s.append(e.pages * PAGE_SIZE)
        }
        for fd in openFDs {
            let p = pipes[fds[fd]!]
            s += [Int(fd), p.size, p.cnt, p.inPos, p.outPos]
        }
        return s
    }

    /// A snapshot, labelled (for a divergence report).
    static func describe(_ s: [Int]) -> [String] {
        var out: [String] = []
        var i = 0
        for name in counterNames where i < s.count {
            out.append("\(name) = \(s[i])")
            i += 1
        }
        guard i < s.count else { return out }
        let n = s[i]
        i += 1
        var extents: [String] = []
        for _ in 0..<n where i + 1 < s.count {
            extents.append("[\(s[i] / 1024)K, +\(s[i + 1] / 1024)K)")
            i += 2
        }
        out.append("arena free extents = " + extents.joined(separator: " "))
        while i + 4 < s.count {
            out.append("fd \(s[i]): size \(s[i + 1]) cnt \(s[i + 2]) in \(s[i + 3]) out \(s[i + 4])")
            i += 5
        }
        return out
    }
}
