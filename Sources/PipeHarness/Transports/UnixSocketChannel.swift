#if canImport(Glibc)
import Glibc
#endif

/// socketpair(AF_UNIX, SOCK_STREAM) (or `SOCK_SEQPACKET`), used in one direction: the writer
/// writes to one socket, the reader reads from its peer. Closing the writer's socket gives the
/// reader end of file.
public final class UnixSocketChannel: ByteChannel {
    private(set) var writeFD: Int32
    private(set) var readFD: Int32
    public let type: UnixSocketType

    public init(type: UnixSocketType = .stream) throws {
        self.type = type
        var fds: [Int32] = [-1, -1]
        let r = fds.withUnsafeMutableBufferPointer {
            socketpair(AF_UNIX, type.socketType | Int32(SOCK_CLOEXEC.rawValue), 0, $0.baseAddress!)
        }
        if r != 0 { throw HarnessError.system(call: "socketpair", errno: errno, context: "AF_UNIX \(type.constantName)") }
        writeFD = fds[0]
        readFD = fds[1]
    }

    deinit {
        FD.close(&readFD)
        FD.close(&writeFD)
    }

    public func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        // send(MSG_NOSIGNAL) so that a vanished reader is an error value, not SIGPIPE.
        while true {
            let n = send(writeFD, base, count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EPIPE || e == ECONNRESET { throw HarnessError.peerClosed("unix-socket: reader closed") }
            throw HarnessError.system(call: "send", errno: e, context: "unix-socket")
        }
    }

    public func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        try FD.read(readFD, base, count, what: "unix-socket")
    }

    public func closeWriteEnd() { FD.close(&writeFD) }
    public func closeReadEnd() { FD.close(&readFD) }
}
