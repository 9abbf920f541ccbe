import CPipeSys

/// One stream measurement: how fast `totalBytes` get from a writer thread to a reader thread.
public struct StreamConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    public var totalBytes: Int
    /// Bytes per write call (the last one may be shorter).
    public var writeSize: Int
    /// Bytes asked for per read call.
    public var readSize: Int
    /// Where the writer and reader run and where their buffers live. For memcpy the single
    /// copying thread uses the writer's CPU and node, its source buffer the writer's memory
    /// node and its destination the reader's.
    public var placement: Placement
    /// CPUs to pin the writer and reader to (`placement.writerCPU`, `placement.readerCPU`);
    /// nil lets the scheduler place them.
    public var writerCPU: Int? {
        get { placement.writerCPU }
        set { placement.writerCPU = newValue }
    }
    public var readerCPU: Int? {
        get { placement.readerCPU }
        set { placement.readerCPU = newValue }
    }
    /// Send the sequence-numbered `Payload` and check every received byte.
    public var verify: Bool
    public var payload: Payload

    public init(
        transport: TransportKind, options: TransportOptions = TransportOptions(),
        totalBytes: Int, writeSize: Int = 64 * 1024, readSize: Int = 64 * 1024,
        writerCPU: Int? = nil, readerCPU: Int? = nil, verify: Bool = false, payload: Payload = Payload(),
        placement: Placement = Placement()
    ) {
        self.transport = transport
        self.options = options
        self.totalBytes = totalBytes
        self.writeSize = writeSize
        self.readSize = readSize
        self.placement = placement
        self.verify = verify
        self.payload = payload
        if let writerCPU { self.placement.writerCPU = writerCPU }
        if let readerCPU { self.placement.readerCPU = readerCPU }
    }

    func validate() throws {
        guard totalBytes > 0 else { throw HarnessError.invalidArgument("stream total bytes must be positive, got \(totalBytes)") }
        guard writeSize > 0 else { throw HarnessError.invalidArgument("stream write size must be positive, got \(writeSize)") }
        guard readSize > 0 else { throw HarnessError.invalidArgument("stream read size must be positive, got \(readSize)") }
    }
}

/// What one stream run measured. Times are CLOCK_MONOTONIC and CLOCK_THREAD_CPUTIME_ID, ns.
public struct StreamResult: Codable, Sendable {
    public var transport: String
    public var totalBytes: Int
    public var writeSize: Int
    public var readSize: Int
    public var writerCPU: Int?
    public var readerCPU: Int?
    public var verified: Bool
    /// Bytes the reader received (equals totalBytes unless the transport lost some).
    public var bytesReceived: Int
    /// From the first thread leaving the start barrier to the last one finishing.
    public var wallNs: Int64
    public var writerCPUNs: Int64
    /// 0 for memcpy (one thread).
    public var readerCPUNs: Int64
    public var writeCalls: Int
    public var readCalls: Int
    /// bytesReceived / wall time.
    public var bytesPerSecond: Double
    /// CPUs (sched_getcpu) each thread was on at its start and end: a check that pinning held
    /// and, unpinned, whether the threads shared a CPU. -1 where not applicable.
    public var writerCPUsSeen: [Int]
    public var readerCPUsSeen: [Int]
    /// Kernel pipe capacity actually in force (F_GETPIPE_SZ), for the kernel-pipe transports.
    public var kernelPipeSize: Int?
    /// The first wrong byte, when verifying; nil when all bytes matched or not verifying.
    public var firstMismatch: Mismatch?
    /// The placement asked for (nil when none was).
    public var placement: Placement? = nil
    /// Where the writer's and reader's user buffers (memcpy: source and destination) and, for
    /// the engine, the arena's pages really were at the end of the run (move_pages).
    public var writerMemory: MemoryLocation? = nil
    public var readerMemory: MemoryLocation? = nil
    public var arenaMemory: MemoryLocation? = nil
    /// What each side's thread did in its measured window: the engine's events and the
    /// scheduler's view (memcpy: the one thread, as the writer).
    public var writerActivity = ThreadActivity()
    public var readerActivity = ThreadActivity()

    /// True when verification ran, found no wrong byte and every byte arrived.
    public var integrityOK: Bool { verified && firstMismatch == nil && bytesReceived == totalBytes }
}

public enum StreamWorkload {
    /// Runs one stream measurement over a fresh channel of `config.transport` (or the memcpy
    /// single-thread copy).
    public static func run(_ config: StreamConfig) throws -> StreamResult {
        try config.validate()
        if !config.placement.isUnplaced { try config.placement.validate() }
        if config.transport == .memcpy { return try runMemcpy(config) }
        let channel = try makeChannel(config.transport, config.options)
        try bindEngineArena(channel, node: config.placement.arenaNode)
        return try run(config, over: channel)
    }

    /// Runs one stream measurement over a channel the caller built (used to wrap a channel,
    /// e.g. to inject faults in tests). `config.transport` is only recorded.
    public static func run(_ config: StreamConfig, over channel: ByteChannel) throws -> StreamResult {
        try config.validate()
        let barrier = SpinBarrier(parties: 2)
        return try launch(config, over: channel, barrier: barrier).finish()
    }

    /// A stream whose two threads are running (or waiting at their start barrier).
    struct Launched {
        let config: StreamConfig
        let channel: ByteChannel
        let writer: WorkerThread<SideReport>
        let reader: WorkerThread<SideReport>

        /// Joins both threads and makes the result; the wall time runs from the first of the
        /// two sides leaving the barrier to the last one finishing.
        func finish() throws -> StreamResult {
            try finishTimed().result
        }

        /// `finish`, plus the CLOCK_MONOTONIC times the first side started and the last ended.
        func finishTimed() throws -> (result: StreamResult, start: Int64, end: Int64) {
            let w = Swift.Result { try writer.join() }
            let r = Swift.Result { try reader.join() }
            // A reader error explains a writer's "peer closed", so report the reader's first.
            let rr = try r.get()
            let wr = try w.get()
            return (try StreamWorkload.result(config, channel, wr, rr), min(wr.start, rr.start), max(wr.end, rr.end))
        }
    }

    /// Starts the writer and reader of one stream; they wait at `barrier` (which may be shared
    /// with other streams: the pairs workload). If the reader cannot be started, the missing
    /// party arrives, failed, `releaseOthers` releases any other parties of a shared barrier,
    /// the writer is joined and the error thrown. If the writer cannot be started, nothing
    /// has arrived and the error is thrown at once.
    ///
    /// `finishLine` (pairs): each reader, once its stream has ended, waits there for every
    /// other stream to end before it looks at memory and closes, so that the checks do not
    /// disturb streams still running. `queryArena`: whether this reader checks the engine's
    /// arena (one per shared arena is enough).
    static func launch(
        _ config: StreamConfig, over channel: ByteChannel, barrier: SpinBarrier,
        finishLine: FinishLine? = nil, queryArena: Bool = true, releaseOthers: () -> Void = {}
    ) throws -> Launched {
        let shared = Unchecked(channel)
        // Reader progress (bytes read and verified), published for a writer that must not
        // rewrite bytes the transport may still refer to (vmsplice). Own cache line.
        let progress = SharedCounter()
        let retained = channel.writerBufferRetainedUntilRead

        let writer = try WorkerThread<SideReport>.start {
            try writerSide(config, shared.value, barrier, progress, retained)
        }
        let reader: WorkerThread<SideReport>
        do {
            reader = try WorkerThread<SideReport>.start {
                try readerSide(config, shared.value, barrier, progress, finishLine, queryArena)
            }
        } catch {
            // The writer is waiting at the barrier for a reader that will never come.
            barrier.arrive(failed: true)
            releaseOthers()
            _ = try? writer.join()
            throw error
        }
        return Launched(config: config, channel: channel, writer: writer, reader: reader)
    }

    static func result(_ config: StreamConfig, _ channel: ByteChannel, _ wr: SideReport, _ rr: SideReport) throws -> StreamResult {
        if rr.bytes < config.totalBytes && rr.mismatch == nil {
            throw HarnessError.unexpectedEOF(expected: config.totalBytes, received: rr.bytes)
        }
        let wall = max(wr.end, rr.end) - min(wr.start, rr.start)
        var result = StreamResult(
            transport: config.transport.rawValue, totalBytes: config.totalBytes,
            writeSize: config.writeSize, readSize: config.readSize,
            writerCPU: config.writerCPU, readerCPU: config.readerCPU, verified: config.verify,
            bytesReceived: rr.bytes, wallNs: wall, writerCPUNs: wr.cpuNs, readerCPUNs: rr.cpuNs,
            writeCalls: wr.calls, readCalls: rr.calls,
            bytesPerSecond: Double(rr.bytes) / (Double(max(wall, 1)) / 1e9),
            writerCPUsSeen: wr.cpusSeen, readerCPUsSeen: rr.cpusSeen,
            kernelPipeSize: kernelPipeSize(of: channel), firstMismatch: rr.mismatch)
        result.placement = config.placement.isUnplaced ? nil : config.placement
        result.writerMemory = wr.memory
        result.readerMemory = rr.memory
        result.arenaMemory = rr.arena
        result.writerActivity = wr.clock.activity
        result.readerActivity = rr.clock.activity
        return result
    }

    /// What one side measured, on its own clocks.
    struct SideReport: Sendable {
        var clock = SideClock()
        var start: Int64 { clock.start }
        var end: Int64 { clock.end }
        var cpuNs: Int64 { clock.cpuNs }
        var calls = 0
        var bytes = 0
        var cpusSeen: [Int] { clock.cpusSeen }
        var mismatch: Mismatch?
        /// Where this side's buffer was at the end; for the reader of an engine channel, the
        /// arena too (checked before the read end closes and frees the pipe's buffer).
        var memory: MemoryLocation?
        var arena: MemoryLocation?
    }

    private static func writerSide(
        _ config: StreamConfig, _ channel: ByteChannel, _ barrier: SpinBarrier,
        _ progress: SharedCounter, _ retained: Bool
    ) throws -> SideReport {
        defer { channel.closeWriteEnd() }   // on error too: the reader must see end of stream
        let w = config.writeSize
        // Source slots. Plain runs send one buffer, never modified, again and again. Verified
        // runs regenerate the payload before each write; when the transport keeps referring
        // to written memory (vmsplice) they rotate through enough slots to cover more than a
        // large pipe, and before reusing a slot wait until the reader has read past the bytes
        // last sent from it — so the pages are never rewritten while still in the pipe.
        let slotCount = config.verify && retained ? max(2, (4 << 20) / w + 2) : 1
        // Placed first, so that the buffer is touched (and allocated) where the thread runs.
        let slots = try startTogether(barrier, cpu: config.placement.writerCPU, node: config.placement.writerNode, peerFailed: "stream reader failed to start") {
            return try AlignedBuffer(count: slotCount * w, node: config.placement.writerMemoryNode, what: "writer buffer")
        }
        if !config.verify { config.payload.fill(slots.base, count: w, streamOffset: 0) }
        var report = SideReport()
        report.clock.begin()

        var sent = 0
        var slot = 0
        while sent < config.totalBytes {
            let chunk = min(w, config.totalBytes - sent)
            let src = slots.base + slot * w
            if config.verify {
                if retained {
                    // Chunk j (= sent / w; all chunks but the last are whole) uses slot
                    // j % slotCount, last used by chunk j - slotCount, which ended at
                    // (j - slotCount + 1) · w = sent - (slotCount - 1) · w.
                    let mustHaveBeenRead = sent - (slotCount - 1) * w
                    var spins = 0
                    while progress.load() < mustHaveBeenRead { backoff(&spins) }
                }
                config.payload.fill(src, count: chunk, streamOffset: sent)
            }
            var done = 0
            while done < chunk {
                done += try channel.write(src + done, chunk - done)
                report.calls += 1
            }
            sent += chunk
            slot = slot + 1 == slotCount ? 0 : slot + 1
        }

        report.clock.finish()
        report.bytes = sent
        report.memory = slots.location("writer buffer")
        return report
    }

    private static func readerSide(
        _ config: StreamConfig, _ channel: ByteChannel, _ barrier: SpinBarrier, _ progress: SharedCounter,
        _ finishLine: FinishLine?, _ queryArena: Bool
    ) throws -> SideReport {
        var crossedFinishLine = false
        defer {
            if !crossedFinishLine { finishLine?.cross() }   // on error too, or the others wait forever
            channel.closeReadEnd()   // on error too: the writer must not block forever
        }
        let buffer = try startTogether(barrier, cpu: config.placement.readerCPU, node: config.placement.readerNode, peerFailed: "stream writer failed to start") {
            return try AlignedBuffer(count: config.readSize, node: config.placement.readerMemoryNode, what: "reader buffer")
        }
        var report = SideReport()
        report.clock.begin()

        var received = 0
        while true {
            let n = try channel.read(buffer.base, config.readSize)
            if n == 0 { break }
            report.calls += 1
            if config.verify {
                if report.mismatch == nil {
                    report.mismatch = config.payload.firstMismatch(buffer.base, count: n, streamOffset: received)
                }
                received += n
                progress.store(received)
            } else {
                received += n
            }
        }

        report.clock.finish()
        report.bytes = received   // more than totalBytes shows in integrityOK / bytesReceived
        if let finishLine {
            crossedFinishLine = true
            finishLine.crossAndWait()
        }
        report.memory = buffer.location("reader buffer")
        if queryArena { report.arena = queryEngineArena(channel, requestedNode: config.placement.arenaNode) }
        return report
    }

    /// The single-thread copy loop: the physical limit of moving the bytes once.
    private static func runMemcpy(_ config: StreamConfig) throws -> StreamResult {
        let worker = try WorkerThread<(SideReport, UInt8)>.start {
            try applyThreadPlacement(cpu: config.placement.writerCPU, node: config.placement.writerNode)
            let w = config.writeSize
            let src = try AlignedBuffer(count: w, node: config.placement.writerMemoryNode, what: "memcpy source")
            let dst = try AlignedBuffer(count: w, fill: 0, node: config.placement.readerMemoryNode, what: "memcpy destination")
            if !config.verify { config.payload.fill(src.base, count: w, streamOffset: 0) }
            var report = SideReport()
            // Folding one byte of each copy into a value we return keeps the optimiser from
            // deleting copies into a buffer that is otherwise never read.
            var sink: UInt8 = 0
            report.clock.begin()
            var copied = 0
            while copied < config.totalBytes {
                let chunk = min(w, config.totalBytes - copied)
                if config.verify { config.payload.fill(src.base, count: chunk, streamOffset: copied) }
                dst.base.copyMemory(from: src.base, byteCount: chunk)
                if config.verify {
                    if report.mismatch == nil {
                        report.mismatch = config.payload.firstMismatch(dst.base, count: chunk, streamOffset: copied)
                    }
                } else {
                    sink ^= dst.base.load(fromByteOffset: chunk - 1, as: UInt8.self)
                }
                copied += chunk
                report.calls += 1
            }
            report.clock.finish()
            report.bytes = copied
            report.memory = src.location("memcpy source")
            report.arena = dst.location("memcpy destination")   // returned in the reader's slot
            return (report, sink)
        }
        let (r, _) = try worker.join()
        let wall = r.end - r.start
        var result = StreamResult(
            transport: TransportKind.memcpy.rawValue, totalBytes: config.totalBytes,
            writeSize: config.writeSize, readSize: config.writeSize,
            writerCPU: config.writerCPU, readerCPU: nil, verified: config.verify,
            bytesReceived: r.bytes, wallNs: wall, writerCPUNs: r.cpuNs, readerCPUNs: 0,
            writeCalls: r.calls, readCalls: r.calls,
            bytesPerSecond: Double(r.bytes) / (Double(max(wall, 1)) / 1e9),
            writerCPUsSeen: r.cpusSeen, readerCPUsSeen: [-1, -1],
            kernelPipeSize: nil, firstMismatch: r.mismatch)
        result.placement = config.placement.isUnplaced ? nil : config.placement
        result.writerMemory = r.memory
        result.readerMemory = r.arena
        result.writerActivity = r.clock.activity
        return result
    }

    static func kernelPipeSize(of channel: ByteChannel) -> Int? {
        if let c = channel as? KernelPipeChannel { return c.pipeSize }
        if let c = channel as? VmspliceChannel { return c.pipeSize }
        return nil
    }
}
