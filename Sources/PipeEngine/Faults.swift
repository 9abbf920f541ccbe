import CPipeSys

/// Where the engine can be made to fail on purpose (fault injection, for tests).
public enum FaultPoint: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// `vm_map_find` finds no room: the allocation paths of `pipespace_new` (pipefragretry,
    /// pipeallocfail and ENOMEM from pipe2, piperesizefail keeping the old buffer).
    case arenaAllocate
    /// The `mprotect` that makes a new range read-write fails: a host refusal (ENOMEM, counted
    /// in `engine.host_map_refusals`), not the seed's no room.
    case arenaProtect
    /// `vm_fault_quick_hold_pages` cannot hold the writer's range: EFAULT, nothing moved.
    case pageHold
    /// `mlock` is refused (no privilege, RLIMIT_MEMLOCK): the populate hold is used instead
    /// and `engine.hold_fallbacks` counts it.
    case pageLock
    /// Not a failure but a pause: while a schedule is set, the reader's copy from the writer's
    /// held pages (`uiomove_fromphys`, two pages or more) stops at a page boundary halfway and
    /// asks the schedule, with no engine lock held, before copying the rest. A schedule that
    /// blocks there parks the reader inside the chunk: the window in which another thread of
    /// the writer can unmap or protect the memory being copied (the case the kernel's wired
    /// pages cover and the guarded copy answers: the reader keeps what arrived, the write is
    /// EFAULT). What the schedule returns is only counted.
    case directCopy

    public var description: String {
        switch self {
        case .arenaAllocate: "arena-allocate"
        case .arenaProtect: "arena-protect"
        case .pageHold: "page-hold"
        case .pageLock: "page-lock"
        case .directCopy: "direct-copy"
        }
    }
}

/// When to fail: asked at every pass through a fault point with the point, the pass's index
/// at that point (from 0) and the bytes involved; asked outside the injector's own lock, so
/// it may block (see `FaultPoint.directCopy`).
public struct FaultSchedule: Sendable {
    public let decide: @Sendable (FaultPoint, Int, Int) -> Bool

    public init(_ decide: @escaping @Sendable (FaultPoint, Int, Int) -> Bool) {
        self.decide = decide
    }

    /// Fails the `n`-th pass (from 0) through `point`, once.
    public static func once(at point: FaultPoint, occurrence n: Int = 0) -> FaultSchedule {
        FaultSchedule { p, i, _ in p == point && i == n }
    }

    /// Fails every pass through `points` with probability `p`, from a seeded generator, so a
    /// schedule replays exactly for the same sequence of passes.
    public static func random(seed: UInt64, probability p: Double,
                              at points: Set<FaultPoint> = Set(FaultPoint.allCases)) -> FaultSchedule {
        FaultSchedule { point, i, _ in
            guard points.contains(point) else { return false }
            // SplitMix64 of (seed, point, occurrence): no shared state, so no lock needed.
            var z = seed &+ UInt64(point.rawValue) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) / Double(1 << 53) < p
        }
    }
}

/// The engine's fault injector: off (one relaxed load per fault point) unless a schedule is set.
final class FaultInjector: @unchecked Sendable {
    private let enabled = AtomicWord(0)
    private let lock = PipeMutex()
    private var schedule: FaultSchedule?
    private var passes = [Int](repeating: 0, count: FaultPoint.allCases.count)
    private var injected = [Int](repeating: 0, count: FaultPoint.allCases.count)

    func set(_ schedule: FaultSchedule?) {
        lock.lock()
        self.schedule = schedule
        passes = passes.map { _ in 0 }
        lock.unlock()
        enabled.store(schedule == nil ? 0 : 1)
    }

    /// Whether a schedule is set (one relaxed load).
    @inline(__always)
    var isEnabled: Bool { enabled.load() != 0 }

    /// Whether this pass through `point` should fail.
    @inline(__always)
    func shouldFail(_ point: FaultPoint, bytes: Int) -> Bool {
        if enabled.load() == 0 { return false }
        lock.lock()
        guard let schedule else { lock.unlock(); return false }
        let i = passes[point.rawValue]
        passes[point.rawValue] += 1
        lock.unlock()
        let fail = schedule.decide(point, i, bytes)
        if fail {
            lock.lock()
            injected[point.rawValue] += 1
            lock.unlock()
        }
        return fail
    }

    func injectedCount(_ point: FaultPoint) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return injected[point.rawValue]
    }
}

extension PipeSystem {
    /// Makes the engine fail on purpose where `schedule` says (nil: stop). For tests: every
    /// injected failure takes the path a real one would, with the errno FreeBSD gives.
    public func injectFaults(_ schedule: FaultSchedule?) {
        kernel.faults.set(schedule)
    }

    /// How many failures were injected at `point` so far.
    public func injectedFaults(at point: FaultPoint) -> Int {
        kernel.faults.injectedCount(point)
    }

    /// Make the arena refuse allocations for which `rule(bytes)` is true (nil: stop).
    public func injectArenaFailures(_ rule: (@Sendable (Int) -> Bool)?) {
        injectFaults(rule.map { rule in
            FaultSchedule { point, _, bytes in point == .arenaAllocate && rule(bytes) }
        })
    }
}
