#if canImport(Glibc)
import Glibc
#endif

/// Everything the harness can fail with, as values with a message a person can act on.
public enum HarnessError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A system call failed: which call, on what, and the errno it returned.
    case system(call: String, errno: Int32, context: String)
    /// The requested combination is not available on this machine or not implemented.
    case unsupported(String)
    /// A parameter is out of range.
    case invalidArgument(String)
    /// The peer closed its end while we still had bytes to send (EPIPE or its ring equivalent).
    case peerClosed(String)
    /// The stream ended before the expected number of bytes arrived.
    case unexpectedEOF(expected: Int, received: Int)
    /// A worker thread could not be started.
    case threadStart(errno: Int32)
    /// Pinning a thread to a CPU failed.
    case pinning(cpu: Int, errno: Int32)
    /// A verified transfer delivered a wrong byte.
    case integrity(offset: Int, expected: UInt8, actual: UInt8)
    /// A verified contend run found a record split, out of order, read twice or lost.
    case records(String)

    public var description: String {
        switch self {
        case let .system(call, errno, context):
            let ctx = context.isEmpty ? "" : " (\(context))"
            return "\(call) failed\(ctx): \(HarnessError.errnoText(errno))"
        case let .unsupported(what):
            return "unsupported: \(what)"
        case let .invalidArgument(what):
            return "invalid argument: \(what)"
        case let .peerClosed(what):
            return "peer closed: \(what)"
        case let .unexpectedEOF(expected, received):
            return "unexpected end of stream after \(received) of \(expected) bytes"
        case let .threadStart(errno):
            return "pthread_create failed: \(HarnessError.errnoText(errno))"
        case let .pinning(cpu, errno):
            return "cannot pin thread to CPU \(cpu): \(HarnessError.errnoText(errno))"
        case let .integrity(offset, expected, actual):
            return "integrity check failed at byte \(offset): expected 0x\(String(expected, radix: 16)), got 0x\(String(actual, radix: 16))"
        case let .records(what):
            return "record check failed: \(what)"
        }
    }

    /// "EAGAIN (Resource temporarily unavailable)"-style text for an errno.
    static func errnoText(_ code: Int32) -> String {
        let message = strerror(code).map { String(cString: $0) } ?? "unknown error"
        return "errno \(code) (\(message))"
    }
}
