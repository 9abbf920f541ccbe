// The constants of FreeBSD's sys/sys/pipe.h and sys/kern/sys_pipe.c (amd64), in freebsd-src at
// revision f4f56ff43dbd30930f4b018e39ba2b9abf84551f, by their C names so that the routines in
// SysPipe.swift read like the seed.

/// `PAGE_SIZE`: the unit of every buffer size.
public let PAGE_SIZE = 4096
let PAGE_MASK = PAGE_SIZE - 1
/// `PIPE_BUF`: the atomic-write limit, also the POLLOUT / EVFILT_WRITE threshold.
public let PIPE_BUF = 512
/// `PIPE_MINDIRECT`: the default of `kern.ipc.pipe_mindirect`.
public let PIPE_MINDIRECT = 8192
/// Default `PIPE_SIZE`, `BIG_PIPE_SIZE`, `SMALL_PIPE_SIZE` (per instance in this engine).
public let DEFAULT_PIPE_SIZE = 16384
public let DEFAULT_BIG_PIPE_SIZE = 65536
public let DEFAULT_SMALL_PIPE_SIZE = PAGE_SIZE

@inline(__always) func round_page(_ x: Int) -> Int { (x + PAGE_MASK) & ~PAGE_MASK }
@inline(__always) func trunc_page(_ x: Int) -> Int { x & ~PAGE_MASK }
@inline(__always) func howmany(_ x: Int, _ y: Int) -> Int { (x + y - 1) / y }

/// `pipe_state` bits.
struct PipeState: OptionSet, Sendable {
    let rawValue: UInt32
    static let ASYNC = PipeState(rawValue: 0x004)     // async I/O (SIGIO to the owner)
    static let WANTR = PipeState(rawValue: 0x008)     // reader wants some characters
    static let WANTW = PipeState(rawValue: 0x010)     // writer wants space to put characters
    static let WANT = PipeState(rawValue: 0x020)      // pipe is wanted to be run-down
    static let SEL = PipeState(rawValue: 0x040)       // pipe has a select/poll waiter
    static let EOF = PipeState(rawValue: 0x080)       // pipe is in EOF condition
    static let LOCKFL = PipeState(rawValue: 0x100)    // process has exclusive access
    static let LWANT = PipeState(rawValue: 0x200)     // unused
    static let DIRECTW = PipeState(rawValue: 0x400)   // pipe in direct write mode
    static let DIRECTOK = PipeState(rawValue: 0x800)  // direct mode ok (set, never read)
}

/// `pipe_present`.
enum PipePresent: UInt8, Sendable {
    case none = 0
    case ACTIVE = 1
    case CLOSING = 2
    case FINALIZED = 3
}

/// `f_flag` bits of a descriptor (`struct file`).
struct FileFlags: OptionSet, Sendable {
    let rawValue: UInt32
    static let FREAD = FileFlags(rawValue: 0x1)
    static let FWRITE = FileFlags(rawValue: 0x2)
    static let FNONBLOCK = FileFlags(rawValue: 0x4)
    static let FASYNC = FileFlags(rawValue: 0x40)
}

/// Signals the engine raises (Linux numbers, so that they compare with `SIGPIPE` from Glibc).
public struct Signal: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let SIGPIPE = Signal(rawValue: 13)
    public static let SIGIO = Signal(rawValue: 29)
    public static let SIGALRM = Signal(rawValue: 14)
    public static let SIGINT = Signal(rawValue: 2)
    public static let SIGUSR1 = Signal(rawValue: 10)
    public var description: String {
        switch self {
        case .SIGPIPE: "SIGPIPE"
        case .SIGIO: "SIGIO"
        case .SIGALRM: "SIGALRM"
        case .SIGINT: "SIGINT"
        case .SIGUSR1: "SIGUSR1"
        default: "signal \(rawValue)"
        }
    }
}
