/// A pipe descriptor as a Swift value: the idiomatic layer over `PipeSystem`'s POSIX surface.
///
/// ```swift
/// let sys = try PipeSystem()
/// let (reader, writer) = try sys.makePipe()
/// try writer.writeAll(Array("hello".utf8))
/// var buffer = [UInt8](repeating: 0, count: 64)
/// let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
/// ```
/// Either end may also be written (FreeBSD pipes are bidirectional); `reader` is fd[0].
public struct PipeEnd: Sendable, Hashable, CustomStringConvertible {
    public let system: PipeSystem
    public let fd: Int32

    public init(system: PipeSystem, fd: Int32) {
        self.system = system
        self.fd = fd
    }

    /// One `read`: the bytes read into `buffer`, 0 at end of file.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try system.read(fd, buffer.baseAddress, buffer.count)
    }

    /// One `write`: the bytes accepted (a short count once some moved).
    @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try system.write(fd, bytes.baseAddress, bytes.count)
    }

    /// Writes every byte, retrying short counts and interruptions that moved nothing.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            do {
                offset += try system.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            } catch .interrupted {
                continue
            }
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        var failure: Errno?
        bytes.withUnsafeBytes { b in
            do throws(Errno) { try writeAll(b) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Bytes readable now (`FIONREAD`).
    public var bytesReadable: Int { get throws(Errno) { try system.bytesReadable(fd) } }

    /// `fstat`.
    public func stat() throws(Errno) -> PipeStat { try system.fstat(fd) }

    /// `close`.
    public func close() throws(Errno) { try system.close(fd) }

    public static func == (a: PipeEnd, b: PipeEnd) -> Bool { a.system === b.system && a.fd == b.fd }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(system)); h.combine(fd) }
    public var description: String { "pipe fd \(fd)" }
}

extension PipeSystem {
    /// `pipe2(flags)` as two `PipeEnd`s: `reader` is fd[0], `writer` fd[1].
    public func makePipe(_ flags: Int32 = 0) throws(Errno) -> (reader: PipeEnd, writer: PipeEnd) {
        let (r, w) = try pipe2(flags)
        return (PipeEnd(system: self, fd: r), PipeEnd(system: self, fd: w))
    }
}
