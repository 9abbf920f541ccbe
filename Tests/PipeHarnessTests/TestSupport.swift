@testable import PipeHarness

/// Every transport that is a channel, the engine included.
let allChannels: [TransportKind] = TransportKind.allCases.filter(\.isChannel)

/// Wraps a channel and flips one bit of the byte at stream offset `corruptOffset` as it is
/// read, standing in for a transport that delivers a wrong byte.
final class CorruptingChannel: ByteChannel {
    let inner: ByteChannel
    let corruptOffset: Int
    private var readOffset = 0   // touched only by the reader thread

    init(_ inner: ByteChannel, corruptOffset: Int) {
        self.inner = inner
        self.corruptOffset = corruptOffset
    }

    func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int { try inner.write(base, count) }

    func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        let n = try inner.read(base, count)
        if corruptOffset >= readOffset && corruptOffset < readOffset + n {
            let p = base + (corruptOffset - readOffset)
            p.storeBytes(of: p.load(as: UInt8.self) ^ 0x10, as: UInt8.self)
        }
        readOffset += n
        return n
    }

    func closeWriteEnd() { inner.closeWriteEnd() }
    func closeReadEnd() { inner.closeReadEnd() }
    var writerBufferRetainedUntilRead: Bool { inner.writerBufferRetainedUntilRead }
}

/// Two usable CPUs to pin to, if this machine has them.
func twoCPUs() -> (Int, Int)? {
    let cpus = Topology.usableCPUList()
    return cpus.count >= 2 ? (cpus[0], cpus[1]) : nil
}
