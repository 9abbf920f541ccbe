import Foundation
import Testing
@testable import PipeHarness

/// The contend workload's accounting and its record check: bytes and records conserved over
/// every transport, and a check that finds a record split, dropped or doubled on purpose by a
/// transport that misbehaves.
@Suite(.serialized) struct ContendWorkloadTests {
    static let transports: [(TransportKind, UnixSocketType)] = [
        (.engine, .seqpacket), (.linuxPipe, .seqpacket), (.unixSocket, .seqpacket), (.unixSocket, .stream),
    ]

    /// Three writers and two readers of 64-byte records: every record read whole and once,
    /// every byte counted, a latency for every record written and every read.
    @Test(arguments: transports)
    func smallRecordsArriveWholeOnceAndCounted(side: (TransportKind, UnixSocketType)) throws {
        let (transport, socket) = side
        let config = ContendConfig(transport: transport, writers: 3, readers: 2, recordSize: 64,
                                   recordsPerWriter: 3000, readSize: 64 * 4, socket: socket, verify: true)
        let r = try ContendWorkload.run(config).result
        #expect(r.violation == nil, "\(r.violation?.description ?? "")")
        #expect(r.integrityOK)
        #expect(r.bytesSent == 3 * 3000 * 64)
        #expect(r.bytesReceived == r.bytesSent)
        #expect(r.perReaderBytes.count == 2 && r.perReaderBytes.reduce(0, +) == r.bytesReceived)
        #expect(r.records == 9000)
        #expect(r.writeCalls >= 9000)
        #expect(r.enqueue.count == 9000)
        #expect(r.dequeue.count == r.readCalls)
        #expect(r.perWriterBytesPerSecond.count == 3)
        #expect(r.atomicWriteLimit == ContendConfig.atomicWriteLimit(transport, socket: socket))
        if transport == .unixSocket && socket == .seqpacket { #expect(r.readCalls == 9000) }   // a message per read
        if transport == .engine { #expect(r.engineCounters != nil) }
    }

    /// Records above the transport's PIPE_BUF may interleave; they are checked for loss and
    /// duplication, which a correct run passes.
    @Test(arguments: [TransportKind.engine, .linuxPipe])
    func largeRecordsAreCheckedForLossAndDuplication(transport: TransportKind) throws {
        let config = ContendConfig(transport: transport, writers: 3, readers: 2, recordSize: 8192 + 16,
                                   recordsPerWriter: 200, readSize: 5000, verify: true)
        let m = try ContendWorkload.run(config)
        #expect(!config.atomicRecords(try makeProbeChannel(transport)))
        #expect(m.result.integrityOK, "\(m.result.violation?.description ?? "")")
        #expect(m.result.bytesReceived == 3 * 200 * (8192 + 16))
        #expect(m.enqueue.totalCount == 600)
    }

    func makeProbeChannel(_ t: TransportKind) throws -> SharedChannel {
        t == .engine ? try EngineChannel(EngineOptions()) : try KernelPipeChannel()
    }

    static let size = 64

    /// A kernel pipe that mangles one writer's stream on purpose: it holds record 5 back and
    /// writes it around record 6 (its first half, record 6, its second half) in one atomic
    /// write, as two interleaved writes would leave it.
    @Test func aSplitRecordIsFoundAtItsOffset() throws {
        let config = ContendConfig(transport: .linuxPipe, writers: 1, readers: 1, recordSize: Self.size,
                                   recordsPerWriter: 20, verify: true)
        let channel = try MisbehavingChannel(.split(5))
        let r = try ContendWorkload.run(config, over: channel).result
        let v = try #require(r.violation)
        #expect(v.kind == .split)
        #expect(v.reader == 0)
        // The reader's sixth read holds record 5's first half and record 6's: the first byte of
        // the second half that is not record 5's is where the check must point.
        let records = config.records
        var five = [UInt8](repeating: 0, count: Self.size), six = five
        five.withUnsafeMutableBytes { records.fill($0.baseAddress!, writer: 0, sequence: 5) }
        six.withUnsafeMutableBytes { records.fill($0.baseAddress!, writer: 0, sequence: 6) }
        let half = Self.size / 2
        let firstWrong = (0..<half).first { five[half + $0] != six[$0] }!
        #expect(v.offset == 5 * Self.size + half + firstWrong)
        #expect(!r.integrityOK)
        #expect(r.bytesReceived == r.bytesSent)   // nothing lost: only the order is wrong
    }

    @Test func aDroppedRecordIsMissing() throws {
        let config = ContendConfig(transport: .linuxPipe, writers: 1, readers: 1, recordSize: Self.size,
                                   recordsPerWriter: 20, verify: true)
        let r = try ContendWorkload.run(config, over: try MisbehavingChannel(.drop(7))).result
        let v = try #require(r.violation)
        #expect(v.kind == .missing)
        #expect(v.offset == 7 * Self.size)
        #expect(v.detail.contains("record 7"))
    }

    @Test func aRecordWrittenTwiceIsADuplicate() throws {
        let config = ContendConfig(transport: .linuxPipe, writers: 1, readers: 1, recordSize: Self.size,
                                   recordsPerWriter: 20, verify: true)
        let r = try ContendWorkload.run(config, over: try MisbehavingChannel(.double(3))).result
        let v = try #require(r.violation)
        #expect(v.kind == .duplicate)
        #expect(v.reader == 0 && v.offset == 4 * Self.size)
    }

    /// Records larger than PIPE_BUF: a dropped one is caught by the byte count and sum.
    @Test func aLargeRecordDroppedIsLost() throws {
        let config = ContendConfig(transport: .linuxPipe, writers: 1, readers: 1, recordSize: 8192,
                                   recordsPerWriter: 10, verify: true)
        let r = try ContendWorkload.run(config, over: try MisbehavingChannel(.drop(2))).result
        let v = try #require(r.violation)
        #expect(v.kind == .lostOrDuplicated)
        #expect(r.bytesReceived == 9 * 8192)
    }

    /// The checks a transport's promise implies, before any thread starts.
    @Test func readsThatCannotHoldARecordAreRefused() throws {
        let seq = ContendConfig(transport: .unixSocket, writers: 1, readers: 1, recordSize: 256, recordsPerWriter: 1, readSize: 100)
        #expect(throws: HarnessError.self) { try ContendWorkload.run(seq) }
        let ragged = ContendConfig(transport: .engine, writers: 1, readers: 1, recordSize: 64, recordsPerWriter: 1, readSize: 100, verify: true)
        #expect(throws: HarnessError.self) { try ContendWorkload.run(ragged) }
        let tiny = ContendConfig(transport: .engine, writers: 1, readers: 1, recordSize: 8, recordsPerWriter: 1, verify: true)
        #expect(throws: HarnessError.self) { try ContendWorkload.run(tiny) }
        let ring = ContendConfig(transport: .spscRing, writers: 1, readers: 1, recordSize: 64, recordsPerWriter: 1)
        #expect(throws: HarnessError.self) { try ContendWorkload.run(ring) }
    }

    @Test func threadCPUsAreTakenRoundRobinWritersFirst() throws {
        #expect(try ThreadCPUs.parse("spread") == .spread)
        #expect(try ThreadCPUs.parse("0,1,1").cpus(threads: 5, usable: [0, 1]) == [0, 1, 1, 0, 1])
        #expect(ThreadCPUs.spread.cpus(threads: 3, usable: [2, 3]) == [2, 3, 2])
        #expect(throws: SweepError.self) { try ThreadCPUs.parse("0,,1") }
        #expect(throws: SweepError.self) { try ThreadCPUs.parse("-1") }
        let c = ContendConfig(transport: .engine, writers: 2, readers: 2, recordSize: 64, recordsPerWriter: 1, threadCPUs: [0, 1, 1])
        #expect([c.writerCPU(0), c.writerCPU(1), c.readerCPU(0), c.readerCPU(1)] == [0, 1, 1, 0])
    }
}

/// A kernel pipe that changes one record of a single writer's stream, to show that the
/// record check finds it: splits it around the next record, drops it, or writes it twice.
final class MisbehavingChannel: SharedChannel, @unchecked Sendable {
    enum Fault { case split(Int), drop(Int), double(Int) }
    let pipe: KernelPipeChannel
    let fault: Fault
    // Only the one writer thread touches these.
    private var held: [UInt8] = []
    private var count = 0

    init(_ fault: Fault) throws {
        pipe = try KernelPipeChannel(pipeSize: 1 << 20)
        self.fault = fault
    }

    var atomicWriteLimit: Int? { pipe.atomicWriteLimit }

    /// Whole records only (the writer offers one per call): numbered by their order.
    func write(_ base: UnsafeRawPointer, _ n: Int) throws -> Int {
        let record = Array(UnsafeRawBufferPointer(start: base, count: n))
        defer { count += 1 }
        switch fault {
        case .split(let k) where count == k:
            held = record
        case .split(let k) where count == k + 1:
            let half = held.count / 2
            let mangled = Array(held[..<half]) + record + Array(held[half...])
            try mangled.withUnsafeBytes { try pipe.writeAll($0.baseAddress!, $0.count) }
        case .drop(let k) where count == k:
            break
        case .double(let k) where count == k:
            try pipe.writeAll(base, n)
            try pipe.writeAll(base, n)
        default:
            try pipe.writeAll(base, n)
        }
        return n
    }

    func read(_ base: UnsafeMutableRawPointer, _ n: Int) throws -> Int { try pipe.read(base, n) }
    func closeWriteEnd() { pipe.closeWriteEnd() }
    func closeReadEnd() { pipe.closeReadEnd() }
}
