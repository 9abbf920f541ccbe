import Testing
@testable import PipeHarness

@Suite(.serialized) struct TransportTests {
    /// Single-thread smoke test of the channel contract, small enough never to block.
    @Test(arguments: allChannels)
    func writeReadAndEndOfStream(kind: TransportKind) throws {
        let channel = try makeChannel(kind, TransportOptions())
        let message: [UInt8] = Array("hello, pipe".utf8)
        try message.withUnsafeBytes { try channel.writeAll($0.baseAddress!, $0.count) }
        channel.closeWriteEnd()
        var received = [UInt8](repeating: 0, count: 64)
        let n = try received.withUnsafeMutableBytes { try channel.readFully($0.baseAddress!, $0.count) }
        #expect(n == message.count)
        #expect(Array(received[0..<n]) == message)
        let eof = try received.withUnsafeMutableBytes { try channel.read($0.baseAddress!, $0.count) }
        #expect(eof == 0)
        channel.closeReadEnd()
    }

    @Test func writingAfterTheReaderLeftIsAnError() throws {
        for kind in allChannels {
            let channel = try makeChannel(kind, TransportOptions(ringCapacity: 64))
            channel.closeReadEnd()
            let bytes = [UInt8](repeating: 1, count: 4096)
            #expect(throws: HarnessError.self, "\(kind)") {
                // The ring notices only once it is full, and a child that another test is
                // spawning holds every descriptor between its fork and its exec, so the first
                // writes may fill a buffer: write past any buffer (16 MiB); they then fail.
                for _ in 0..<4096 { try bytes.withUnsafeBytes { try channel.writeAll($0.baseAddress!, $0.count) } }
            }
        }
    }

    @Test func kernelPipeSizeIsApplied() throws {
        let pipe = try KernelPipeChannel(pipeSize: 1 << 20)
        #expect(pipe.pipeSize == 1 << 20)
        let splice = try VmspliceChannel(pipeSize: 256 * 1024)
        #expect(splice.pipeSize == 256 * 1024)
        #expect(splice.writerBufferRetainedUntilRead)
        #expect(!pipe.writerBufferRetainedUntilRead)
        #expect(throws: HarnessError.self) { try KernelPipeChannel(pipeSize: -1) }
    }

    @Test func ringCapacityIsAPowerOfTwo() throws {
        #expect(try SPSCRingChannel(capacity: 1000).capacity == 1024)
        #expect(try SPSCRingChannel(capacity: 1).capacity == 64)
        #expect(throws: HarnessError.self) { try SPSCRingChannel(capacity: 0) }
    }

    @Test func memcpyIsNotAChannel() {
        #expect(!TransportKind.memcpy.isChannel)
        #expect(throws: HarnessError.self) { try makeChannel(.memcpy, TransportOptions()) }
    }

    @Test func errorsReadWell() {
        let e = HarnessError.system(call: "pipe", errno: 24, context: "linux-pipe")
        #expect(e.description.hasPrefix("pipe failed (linux-pipe): errno 24"))
        #expect(HarnessError.integrity(offset: 5, expected: 0xAB, actual: 0xAA).description.contains("byte 5"))
    }
}
