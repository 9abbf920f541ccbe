// Benchmarks of PipeEngine's operations (names without spaces: package-benchmark 1.38 writes
// threshold files with spaces turned into underscores but looks them up with the spaces), with heap-allocation counts (deterministic: CI checks
// them against Thresholds/) and time (reported, never asserted: these machines are noisy).
//
// The transfer benchmarks move bytes between a writer thread and the benchmark's own thread,
// so they measure what a user of the engine sees: the direct path against the buffered path
// on the same run, for 64 KiB and 1 MiB writes (the seed claims ~30% for the direct path).

import Benchmark
import Foundation
import PipeEngine

/// A writer thread that keeps writing `chunk`-byte writes into `fd` (until the pipe breaks).
final class BackgroundWriter: @unchecked Sendable {
    let system: PipeSystem
    let fd: Int32
    let chunk: Int
    private let source: UnsafeMutableRawPointer

    init(system: PipeSystem, fd: Int32, chunk: Int) {
        self.system = system
        self.fd = fd
        self.chunk = chunk
        source = .allocate(byteCount: chunk, alignment: 4096)
        memset(source, 0xA5, chunk)
        let thread = Thread { [self] in
            while true {
                do { _ = try system.write(fd, source, chunk) } catch { break }
            }
        }
        thread.start()
    }
}

func makeSystem(mindirect: Int? = nil, hold: HoldStrategy? = nil, kva: Int? = nil) -> PipeSystem {
    var config = PipeConfiguration()
    if let mindirect { config.pipeMindirect = mindirect }
    if let hold { config.hold = hold }
    if let kva { config.maxpipekva = kva }
    return try! PipeSystem(config, log: { _ in })
}

/// Reads `bytes` per iteration from a pipe fed by a background writer of `chunk`-byte writes.
/// The pipe and its writer are made once, in setup, so that the allocation count is that of
/// the transfers alone (zero); the writer stays parked in a write until the process exits.
func transferBenchmark(_ name: String, chunk: Int, perIteration bytes: Int, direct: Bool,
                       hold: HoldStrategy? = nil) {
    Benchmark(name, configuration: .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        scalingFactor: .one, maxDuration: .seconds(2), maxIterations: 2000)) {
        (benchmark: Benchmark, context: TransferFixture) in
        let (system, r, _, buffer) = context
        var got = 0
        for _ in benchmark.scaledIterations {
            got = 0
            while got < bytes { got += try! system.read(r, buffer, min(bytes - got, chunk)) }
        }
        blackHole(got)
    } setup: {
        // Direct off: pipe_mindirect above the write size keeps every write buffered.
        let system = makeSystem(mindirect: direct ? nil : 1 << 30, hold: hold)
        let (r, w) = try system.pipe2()
        let writer = BackgroundWriter(system: system, fd: w, chunk: chunk)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
        return (system, r, writer, buffer)
    }
}

typealias TransferFixture = (PipeSystem, Int32, BackgroundWriter, UnsafeMutableRawPointer)
typealias IOFixture = (PipeSystem, Int32, Int32, UnsafeMutableRawPointer)
typealias PollFixture = (PipeSystem, [PollFD])
typealias KqueueFixture = (PipeSystem, Int32)

/// A kqueue watching one pipe that has bytes to read.
func readyKqueue() throws -> KqueueFixture {
    let system = makeSystem()
    let (r, w) = try system.pipe2()
    _ = try system.write(w, [UInt8](repeating: 1, count: 10), 10)
    let kq = try system.kqueue()
    _ = try system.kevent(kq, changes: [Kevent(ident: UInt(r), filter: Kevent.EVFILT_READ,
                                               flags: Kevent.EV_ADD)], capacity: 0, timeout: 0)
    return (system, kq)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 100_000
    )

    // Small write + read on one thread, non-blocking: the buffered hot path.
    Benchmark("small-write+read-64B") { (benchmark: Benchmark, context: IOFixture) in
        let (system, r, w, buffer) = context
        for _ in benchmark.scaledIterations {
            _ = try! system.write(w, buffer, 64)
            _ = try! system.read(r, buffer, 64)
        }
    } setup: {
        let system = makeSystem()
        let (r, w) = try system.pipe2(O_NONBLOCK)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        memset(buffer, 1, 4096)
        return (system, r, w, buffer)
    }

    // pipe2 + two closes.
    Benchmark("pipe2+close-x2") { (benchmark: Benchmark, system: PipeSystem) in
        for _ in benchmark.scaledIterations {
            let (r, w) = try! system.pipe2()
            try! system.close(r)
            try! system.close(w)
        }
    } setup: {
        makeSystem()
    }

    // The kernel's pipe() + two closes: the yardstick for pipe2+close-x2 (the performance
    // report's target: the engine at or under it), measured in the same run.
    Benchmark("kernel-pipe+close-x2") { benchmark in
        // The descriptors on the stack: the benchmark itself allocates nothing.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2) { fds in
            for _ in benchmark.scaledIterations {
                guard Glibc.pipe(fds.baseAddress!) == 0 else { fatalError("pipe: errno \(errno)") }
                Glibc.close(fds[0])
                Glibc.close(fds[1])
            }
        }
    }

    // The direct path against the buffered path, same run.
    transferBenchmark("transfer-64KiB-writes-direct", chunk: 64 << 10, perIteration: 1 << 20, direct: true)
    transferBenchmark("transfer-64KiB-writes-buffered", chunk: 64 << 10, perIteration: 1 << 20, direct: false)
    transferBenchmark("transfer-1MiB-writes-direct", chunk: 1 << 20, perIteration: 4 << 20, direct: true)
    transferBenchmark("transfer-1MiB-writes-buffered", chunk: 1 << 20, perIteration: 4 << 20, direct: false)
    transferBenchmark("transfer-1MiB-writes-direct-hold-none", chunk: 1 << 20,
                      perIteration: 4 << 20, direct: true, hold: PipeEngine.HoldStrategy.none)
    transferBenchmark("transfer-1MiB-writes-direct-hold-mlock", chunk: 1 << 20,
                      perIteration: 4 << 20, direct: true, hold: .mlock)

    // poll and kevent on a ready pipe and an idle one (zero timeout).
    Benchmark("poll-ready") { (benchmark: Benchmark, context: PollFixture) in
        let (system, fds) = context
        var set = fds
        for _ in benchmark.scaledIterations { blackHole(try! system.poll(&set, timeout: 0)) }
    } setup: {
        let system = makeSystem()
        let (r, w) = try system.pipe2()
        _ = try system.write(w, [UInt8](repeating: 1, count: 10), 10)
        return (system, [PollFD(fd: r, events: PollEvents.POLLIN)])
    }
    Benchmark("poll-idle") { (benchmark: Benchmark, context: PollFixture) in
        let (system, fds) = context
        var set = fds
        for _ in benchmark.scaledIterations { blackHole(try! system.poll(&set, timeout: 0)) }
    } setup: {
        let system = makeSystem()
        let (r, _) = try system.pipe2()
        return (system, [PollFD(fd: r, events: PollEvents.POLLIN)])
    }
    Benchmark("kevent-ready") { (benchmark: Benchmark, context: KqueueFixture) in
        let (system, kq) = context
        for _ in benchmark.scaledIterations {
            blackHole(try! system.kevent(kq, changes: [], capacity: 4, timeout: 0))
        }
    } setup: {
        try readyKqueue()
    }
    Benchmark("kevent-idle") { (benchmark: Benchmark, context: KqueueFixture) in
        let (system, kq) = context
        for _ in benchmark.scaledIterations {
            blackHole(try! system.kevent(kq, changes: [], capacity: 4, timeout: 0))
        }
    } setup: {
        let system = makeSystem()
        let (r, _) = try system.pipe2()
        let kq = try system.kqueue()
        _ = try system.kevent(kq, changes: [Kevent(ident: UInt(r), filter: Kevent.EVFILT_READ,
                                                   flags: Kevent.EV_ADD)], capacity: 0, timeout: 0)
        return (system, kq)
    }

    // kevent as the system call takes it: the events go into the caller's buffer.
    Benchmark("kevent-ready-into-buffer") { (benchmark: Benchmark, context: KqueueFixture) in
        let (system, kq) = context
        let events = UnsafeMutableBufferPointer<Kevent>.allocate(capacity: 4)
        defer { events.deallocate() }
        let none = UnsafeBufferPointer<Kevent>(start: nil, count: 0)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try! system.kevent(kq, changes: none, events: events, timeout: 0))
        }
        benchmark.stopMeasurement()
    } setup: {
        try readyKqueue()
    }

    // Resize under KVA pressure: maxpipekva = 96 KiB, a ballast pipe holds 20 KiB. Each
    // iteration grows the buffer 4K -> 64K on a 48 KiB write (pipekva <= 1/2 before it), then,
    // with pipekva now above 3/4, the read that finds it empty shrinks it back to 4K.
    Benchmark("resize-grow+shrink") { (benchmark: Benchmark, context: IOFixture) in
        let (system, r, w, buffer) = context
        for _ in benchmark.scaledIterations {
            _ = try! system.write(w, buffer, 48 << 10)
            _ = try! system.read(r, buffer, 48 << 10)
            do { _ = try system.read(r, buffer, 1) } catch { blackHole(error) }   // shrinks
        }
    } setup: {
        let system = makeSystem(kva: 96 << 10)
        let ballast = try system.pipe2()
        blackHole(ballast)
        let (r, w) = try system.pipe2(O_NONBLOCK)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 4096)
        memset(buffer, 7, 64 << 10)
        return (system, r, w, buffer)
    }
}
