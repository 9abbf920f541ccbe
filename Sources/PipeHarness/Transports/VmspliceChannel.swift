import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// vmsplice(2) of the writer's memory into a kernel pipe; the reader copies out with read(2).
///
/// Without SPLICE_F_GIFT the pipe buffers *refer to the writer's pages* rather than holding a
/// copy, so a `write` returns while the bytes still live only in the caller's buffer: if the
/// writer modified that buffer before the reader read it, the reader would see the new bytes.
/// We do not hide this inside the channel (waiting for the pipe to drain after every write
/// would serialise writer and reader and measure something other than vmsplice). Instead the
/// channel says so through `writerBufferRetainedUntilRead`, and the workloads honour it:
///
/// - stream, plain: the writer sends the same, never-modified source buffer over and over, so
///   there is nothing to corrupt;
/// - stream, verified: the writer regenerates a source slot only after the reader has
///   published that it read past the bytes last sent from that slot (see `StreamWorkload`);
/// - pingpong: a side rewrites its buffer only after receiving the peer's complete reply, which
///   the peer sends only after it has read the whole message, so the pages are already consumed.
///
/// Any other user must keep the same rule: do not touch written bytes until the reader has
/// read them.
public final class VmspliceChannel: ByteChannel {
    private(set) var readFD: Int32
    private(set) var writeFD: Int32
    /// The capacity the kernel reports (F_GETPIPE_SZ) after any resize.
    public let pipeSize: Int

    public var writerBufferRetainedUntilRead: Bool { true }

    public init(pipeSize requested: Int? = nil) throws {
        (readFD, writeFD, pipeSize) = try openKernelPipe(what: "linux-vmsplice", size: requested)
    }

    deinit {
        FD.close(&readFD)
        FD.close(&writeFD)
    }

    public func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        while true {
            // Blocks while the pipe is full; may move fewer bytes than asked (one pipe buffer
            // per page, so at most pipeSize/pageSize pages per call).
            let n = pb_vmsplice(writeFD, base, count, 0)
            if n >= 0 { return n }
            let e = Int32(-n)
            if e == EINTR { continue }
            if e == EPIPE { throw HarnessError.peerClosed("linux-vmsplice: reader closed") }
            throw HarnessError.system(call: "vmsplice", errno: e, context: "linux-vmsplice, \(count) bytes")
        }
    }

    public func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        try FD.read(readFD, base, count, what: "linux-vmsplice")
    }

    public func closeWriteEnd() { FD.close(&writeFD) }
    public func closeReadEnd() { FD.close(&readFD) }
}

/// Writing to a pipe whose reader has gone raises SIGPIPE, which would kill the benchmark
/// instead of letting it report an error. The harness ignores SIGPIPE, once per process, so
/// that such a write fails with EPIPE (reported as `HarnessError.peerClosed`).
private let sigpipeIgnored: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()

func ignoreSIGPIPE() { sigpipeIgnored }
