#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An error number, as the engine's system calls return them: the host's errno values
/// (so `Errno.wouldBlock.rawValue == EAGAIN` on this machine), thrown as typed errors.
///
/// Modelled on swift-system's `Errno`: a thin wrapper whose `description` names the constant
/// and says, in words, what happened.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let operationNotPermitted = Errno(rawValue: EPERM)
    public static let noSuchEntry = Errno(rawValue: ENOENT)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let noSuchDevice = Errno(rawValue: ENXIO)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let noMemory = Errno(rawValue: ENOMEM)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let badAddress = Errno(rawValue: EFAULT)
    public static let exists = Errno(rawValue: EEXIST)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let notTerminal = Errno(rawValue: ENOTTY)
    public static let illegalSeek = Errno(rawValue: ESPIPE)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    /// FreeBSD's `ERESTART` (-1): a sleep was interrupted by a signal whose action restarts
    /// system calls (`SA_RESTART`). It never leaves the engine: the system-call layer restarts
    /// the call when nothing moved, and turns it into a short count when something did.
    public static let restart = Errno(rawValue: -1)

    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", ENXIO: "ENXIO", EBADF: "EBADF",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EEXIST: "EEXIST",
        ENOTDIR: "ENOTDIR", EINVAL: "EINVAL", EMFILE: "EMFILE", ENOTTY: "ENOTTY",
        ESPIPE: "ESPIPE", EPIPE: "EPIPE", EAGAIN: "EAGAIN", ETIMEDOUT: "ETIMEDOUT",
        ESRCH: "ESRCH", -1: "ERESTART",
    ]

    /// Lets `catch Errno.wouldBlock { ... }` match, as with swift-system's `Errno`.
    public static func ~= (match: Errno, error: any Error) -> Bool {
        (error as? Errno) == match
    }

    /// The constant's name, such as `"EPIPE"`.
    public var name: String { Errno.names[rawValue] ?? "errno \(rawValue)" }

    public var description: String {
        if rawValue == -1 { return "ERESTART: interrupted, restart the system call" }
        return "\(name): \(String(cString: strerror(rawValue)))"
    }
}

/// An error with the routine that raised it and a sentence saying what to do, for the places
/// (tunables, configuration) where a bare errno would leave the user guessing.
public struct PipeEngineError: Error, Sendable, CustomStringConvertible {
    public let errno: Errno
    public let message: String
    public init(_ errno: Errno, _ message: String) {
        self.errno = errno
        self.message = message
    }
    public var description: String { "\(errno.name): \(message)" }
}
