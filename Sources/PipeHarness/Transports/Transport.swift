/// A unidirectional byte stream between two threads: one thread writes, another reads.
///
/// The contract is that of a pipe: `write` may accept fewer bytes than offered (it returns how
/// many, always > 0 for a non-empty request, blocking while there is no room), `read` blocks
/// until at least one byte is available and returns 0 only at end of stream (after
/// `closeWriteEnd`, once everything written has been drained). Exactly one thread calls
/// `write`/`closeWriteEnd` and exactly one (other) thread calls `read`/`closeReadEnd`.
public protocol ByteChannel: AnyObject {
    func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int
    func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int
    func closeWriteEnd()
    func closeReadEnd()
    /// True when `write` may return while the transport still refers to the caller's memory
    /// (vmsplice without SPLICE_F_GIFT): the writer must not modify bytes it has written until
    /// the reader has read them. False for every transport that copies.
    var writerBufferRetainedUntilRead: Bool { get }
}

extension ByteChannel {
    public var writerBufferRetainedUntilRead: Bool { false }

    /// Writes all `count` bytes, looping over short writes.
    public func writeAll(_ base: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            done += try write(base + done, count - done)
        }
    }

    /// Reads exactly `count` bytes unless the stream ends first; returns how many were read.
    public func readFully(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        var done = 0
        while done < count {
            let n = try read(base + done, count - done)
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// The transports the harness can measure.
public enum TransportKind: String, CaseIterable, Sendable, Codable {
    /// PipeEngine, the user-space model of FreeBSD's pipe.
    case engine
    /// A Linux kernel pipe: pipe2, write(2), read(2).
    case linuxPipe = "linux-pipe"
    /// vmsplice(2) of the writer's pages into a kernel pipe, read(2) out.
    case linuxVmsplice = "linux-vmsplice"
    /// socketpair(AF_UNIX, SOCK_STREAM).
    case unixSocket = "unix-socket"
    /// A lock-free single-producer single-consumer ring in user memory.
    case spscRing = "spsc-ring"
    /// Not a channel: one thread memcpy-ing, the physical limit of one copy (stream only).
    case memcpy

    /// Whether `makeChannel` can build this kind (memcpy is measured by the stream workload).
    public var isChannel: Bool { self != .memcpy }
}

/// Per-transport knobs. Fields that do not apply to a transport are ignored by it.
public struct TransportOptions: Sendable {
    /// F_SETPIPE_SZ for the kernel-pipe transports (nil keeps the kernel default, 64 KiB).
    /// Above /proc/sys/fs/pipe-max-size this needs CAP_SYS_RESOURCE.
    public var kernelPipeSize: Int?
    /// Capacity of the spsc-ring in bytes (rounded up to a power of two).
    public var ringCapacity: Int
    /// PipeEngine's options.
    public var engine: EngineOptions

    public init(kernelPipeSize: Int? = nil, ringCapacity: Int = 64 * 1024, engine: EngineOptions = EngineOptions()) {
        self.kernelPipeSize = kernelPipeSize
        self.ringCapacity = ringCapacity
        self.engine = engine
    }
}

/// Builds a fresh channel of the given kind.
public func makeChannel(_ kind: TransportKind, _ options: TransportOptions) throws -> ByteChannel {
    switch kind {
    case .engine: return try makeEngineChannel(options)
    case .linuxPipe: return try KernelPipeChannel(pipeSize: options.kernelPipeSize)
    case .linuxVmsplice: return try VmspliceChannel(pipeSize: options.kernelPipeSize)
    case .unixSocket: return try UnixSocketChannel()
    case .spscRing: return try SPSCRingChannel(capacity: options.ringCapacity)
    case .memcpy:
        throw HarnessError.unsupported("memcpy is not a channel; the stream workload measures it as a single-thread copy")
    }
}
