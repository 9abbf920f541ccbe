import CPipeSys
import PipeEngine
import PipeResults

/// What the scheduler did with one thread, from `getrusage(RUSAGE_THREAD)`: its context
/// switches and CPU time. The same units for every transport, so that the engine and the
/// kernel's pipes are explained side by side.
public struct ThreadUsage: Codable, Sendable, Equatable {
    /// Switches the thread asked for (it blocked: a futex wait, a pipe read on an empty pipe).
    public var voluntarySwitches: Int64 = 0
    /// Switches the scheduler imposed (the time slice ran out, a higher-priority thread woke).
    public var involuntarySwitches: Int64 = 0
    public var userNs: Int64 = 0
    public var systemNs: Int64 = 0

    public init() {}

    /// The calling thread's totals since it started (zeros if getrusage failed).
    public static var thisThread: ThreadUsage {
        var u = ThreadUsage()
        _ = pb_thread_rusage(&u.voluntarySwitches, &u.involuntarySwitches, &u.userNs, &u.systemNs)
        return u
    }

    public var switches: Int64 { voluntarySwitches + involuntarySwitches }

    /// Each field of `a` and `b` combined by `op`.
    static func combine(_ a: ThreadUsage, _ b: ThreadUsage, _ op: (Int64, Int64) -> Int64) -> ThreadUsage {
        var d = ThreadUsage()
        d.voluntarySwitches = op(a.voluntarySwitches, b.voluntarySwitches)
        d.involuntarySwitches = op(a.involuntarySwitches, b.involuntarySwitches)
        d.userNs = op(a.userNs, b.userNs)
        d.systemNs = op(a.systemNs, b.systemNs)
        return d
    }

    public static func - (a: ThreadUsage, b: ThreadUsage) -> ThreadUsage { combine(a, b, -) }
    public static func + (a: ThreadUsage, b: ThreadUsage) -> ThreadUsage { combine(a, b, +) }
}

/// What one side's thread (or all the threads of one side, added up) did over its measured
/// window: the engine's events it made (`PipeEventCounts`; zeros for other transports) and
/// the scheduler's view of it.
public struct ThreadActivity: Codable, Sendable, Equatable {
    public var events = PipeEventCounts()
    public var usage = ThreadUsage()

    public init() {}

    init(events: PipeEventCounts, usage: ThreadUsage) {
        self.events = events
        self.usage = usage
    }

    /// This thread now; the difference of two readings is the window between them.
    static var thisThread: ThreadActivity { ThreadActivity(events: .thisThread, usage: .thisThread) }

    public static func - (a: ThreadActivity, b: ThreadActivity) -> ThreadActivity {
        ThreadActivity(events: a.events - b.events, usage: a.usage - b.usage)
    }

    public static func + (a: ThreadActivity, b: ThreadActivity) -> ThreadActivity {
        ThreadActivity(events: a.events + b.events, usage: a.usage + b.usage)
    }

    /// Adds up the activities of several threads of one side (pairs' writers, fan-in's).
    static func sum(_ xs: [ThreadActivity]) -> ThreadActivity { xs.reduce(ThreadActivity(), +) }
}

extension ResultsRow {
    /// The scheduling columns of both sides and, when `engine`, the `ev_*` columns: the
    /// engine events of the writer's and the reader's windows together.
    public mutating func activity(writer: ThreadActivity, reader: ThreadActivity?, engine: Bool) {
        for (side, a) in [("writer", Optional(writer)), ("reader", reader)] {
            guard let a else { continue }
            int("\(side)_vcsw", a.usage.voluntarySwitches)
            int("\(side)_ivcsw", a.usage.involuntarySwitches)
            int("\(side)_user_ns", a.usage.userNs)
            int("\(side)_sys_ns", a.usage.systemNs)
        }
        guard engine, PipeEvent.counted else { return }   // a -DPB_NO_EVENTS build counts nothing
        let both = writer.events + (reader?.events ?? PipeEventCounts())
        for e in PipeEvent.allCases { int(ResultsSchema.eventColumn(e), both[e]) }
    }
}
