import CPipeSys
import CMallocCounter
import Foundation
import Testing
@testable import PipeEngine

/// A joinable OS thread (tests need real threads that block inside the engine).
final class TestThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private(set) var engineThread: EngineThread?
    private let ready = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            engineThread = EngineThread.current
            ready.signal()
            body()
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
        ready.wait()
    }

    /// Under a sanitizer everything runs 10-20x slower, and the suites share two cores: the
    /// bounds on waits stretch by this much there (a real hang is still caught).
    static let timeScale: Double = pb_sanitized_build() ? 10 : 1

    /// Waits for the thread to finish; false if it did not within `seconds` (scaled).
    @discardableResult
    func join(timeout seconds: Double = 30) -> Bool {
        guard done.wait(timeout: .now() + seconds * TestThread.timeScale) == .success else { return false }
        done.signal()              // so that a second join of a finished thread returns too
        return true
    }
}

/// Waits until `pipe`'s state shows a thread asleep in it (`flag`: `.WANTR` or `.WANTW`) and,
/// with `parked`, until that thread has also given up spinning and parked in the futex. False
/// when that did not happen within 10 s (scaled): the caller fails instead of hanging.
func waitForSleeper(_ pipe: PipeEngine.Pipe, _ flag: PipeState, parked: Bool = false) -> Bool {
    let deadline = pb_monotonic_ns() + Int64(10e9 * TestThread.timeScale)
    while pb_monotonic_ns() < deadline {
        pipe.PIPE_LOCK()
        let state = pipe.pipe_state
        pipe.PIPE_UNLOCK()
        if state.contains(flag) && (!parked || pipe.chan.parkedThreads > 0) { return true }
        usleep(200)
    }
    return false
}

/// Polls `condition` every 200 µs until it holds or `seconds` (scaled) have passed on the
/// monotonic clock; returns its last value.
func eventually(within seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = pb_monotonic_ns() + Int64(seconds * 1e9 * TestThread.timeScale)
    while pb_monotonic_ns() < deadline {
        if try condition() { return true }
        usleep(200)
    }
    return try condition()
}

/// A value shared between test threads, guarded by a lock.
final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
    var get: T { withLock { $0 } }
}

/// A small engine whose tiers are easy to reach: 64 KiB of KVA, default sizes.
func smallKVAConfiguration(_ kva: Int = 64 * 1024) -> PipeConfiguration {
    var c = PipeConfiguration()
    c.maxpipekva = kva
    return c
}

func quietSystem(_ config: PipeConfiguration = PipeConfiguration(),
                 log: Locked<[String]>? = nil) throws -> PipeSystem {
    try PipeSystem(config, log: { message in _ = log?.withLock { $0.append(message) } })
}

/// A deterministic byte pattern: byte i of stream `seed`.
@inline(__always) func patternByte(_ i: Int, seed: UInt8 = 0) -> UInt8 {
    UInt8(truncatingIfNeeded: (i &* 131) ^ (i >> 8) &+ Int(seed))
}

func pattern(_ range: Range<Int>, seed: UInt8 = 0) -> [UInt8] {
    range.map { patternByte($0, seed: seed) }
}

extension PipeSystem {
    /// Writes all of `bytes`, returning what `write` returned.
    func write(_ fd: Int32, _ bytes: [UInt8]) throws -> Int {
        try bytes.withUnsafeBytes { b in try write(fd, b.baseAddress, b.count) }
    }

    /// One `read` of up to `count` bytes.
    func read(_ fd: Int32, count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let n = try buf.withUnsafeMutableBytes { b in try read(fd, b.baseAddress, b.count) }
        return Array(buf[..<n])
    }

    /// Reads exactly `count` bytes (blocking reads).
    func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let chunk = try read(fd, count: count - out.count)
            if chunk.isEmpty { break }
            out += chunk
        }
        return out
    }

    var pipekva: Int { (try? sysctl("kern.ipc.pipekva")) ?? -1 }
}

/// Expects `body` to throw exactly `errno`.
func expectErrno<T>(_ errno: Errno, sourceLocation: SourceLocation = #_sourceLocation,
                    _ body: () throws -> T) {
    do {
        _ = try body()
        Issue.record("expected \(errno.name), got success", sourceLocation: sourceLocation)
    } catch {
        #expect(error as? Errno == errno, sourceLocation: sourceLocation)
    }
}
