import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// One pipe (or socket) whose ends are shared by many threads, as processes share a pipe:
/// log lines from many writers into one reader, GNU make's jobserver where every job reads a
/// token from one pipe and writes it back. Unlike a `ByteChannel`'s one writer and one
/// reader, `write` and `read` may be called from any number of threads at once; each end is
/// closed once, by the thread that leaves it last, after every other user of that end is done.
public protocol SharedChannel: ByteChannel {
    /// Writes of at most this many bytes are never interleaved with other writes, and a read
    /// that asks for a multiple of a record size no larger than it gets whole records:
    /// `PIPE_BUF` for a pipe (the engine's 512, Linux's 4096); `Int.max` for a socket that
    /// keeps message boundaries (`SOCK_SEQPACKET`); nil where nothing is promised (a stream
    /// socket: Linux happens to keep a small send whole, but POSIX does not say so).
    var atomicWriteLimit: Int? { get }
    /// True when each read returns exactly one message (`SOCK_SEQPACKET`): a read must then
    /// ask for at least a whole record, or the rest of it is discarded.
    var keepsMessageBoundaries: Bool { get }
}

extension SharedChannel {
    public var keepsMessageBoundaries: Bool { false }
}

extension EngineChannel: SharedChannel {
    /// The engine's `PIPE_BUF`, FreeBSD's 512.
    public var atomicWriteLimit: Int? { PipeEngine.PIPE_BUF }
}

extension KernelPipeChannel: SharedChannel {
    /// Linux's `PIPE_BUF` (include/uapi/linux/limits.h).
    public var atomicWriteLimit: Int? { linuxPipeBuf }
}

/// Linux's `PIPE_BUF`: a kernel pipe write of at most this many bytes is atomic.
let linuxPipeBuf = 4096

extension UnixSocketChannel: SharedChannel {
    public var atomicWriteLimit: Int? { type == .seqpacket ? Int.max : nil }
    public var keepsMessageBoundaries: Bool { type == .seqpacket }
}

/// The type of an AF_UNIX socket pair: `SOCK_STREAM` (bytes, as a pipe) or `SOCK_SEQPACKET`
/// (messages: every send is one record, read whole by one reader).
public enum UnixSocketType: String, Sendable, Codable, CaseIterable {
    case stream
    case seqpacket

    var socketType: Int32 {
        switch self {
        case .stream: return Int32(SOCK_STREAM.rawValue)
        case .seqpacket: return Int32(SOCK_SEQPACKET.rawValue)
        }
    }

    /// "SOCK_STREAM", for messages.
    public var constantName: String { "SOCK_\(rawValue.uppercased())" }
}
