/// The operations the MAC framework checks in sys_pipe.c (`mac_pipe_check_*`).
public enum PipeOperation: Sendable, Hashable {
    case read
    case write
    case poll
    case stat
    case ioctl(UInt)
}

/// A policy hook standing in for the MAC framework: return an errno to deny an operation
/// (the engine then fails it with that error and changes nothing), nil to allow it.
/// Called with the pipe mutex held: it must not call back into the engine.
public struct PipePolicy: Sendable {
    public let check: @Sendable (PipeOperation, Credential) -> Errno?
    public init(_ check: @escaping @Sendable (PipeOperation, Credential) -> Errno?) {
        self.check = check
    }
}

/// ioctl request numbers, with Linux's values so that Glibc's constants can be passed as-is.
public enum IoctlRequest {
    public static let FIONREAD: UInt = 0x541B
    public static let FIONBIO: UInt = 0x5421
    public static let FIOASYNC: UInt = 0x5452
    public static let FIOSETOWN: UInt = 0x8901
    public static let FIOGETOWN: UInt = 0x8903
    public static let TIOCSPGRP: UInt = 0x5410
    public static let TIOCGPGRP: UInt = 0x540F
}

/// Where the engine delivers process-directed signals (SIGIO to a FIOSETOWN owner).
protocol SignalSink: AnyObject, Sendable {
    func pgsigio(owner: Int32, _ signal: Signal)
}
