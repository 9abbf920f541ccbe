import CPipeSys

// The engine's probes: every event the engine counts, defined here and nowhere else, as
// sys_pipe.c defines its SDT probes (`SDT_PROBE_DEFINE1(pipe, , , ...)`) in one place at the
// top of the file. A count is one add to a counter of the thread that made the event
// (`pb_event_count` in CPipeSys): no atomic, no line shared with the other end, so counting
// is always on. Read them with `PipeEventCounts.thisThread` before and after what you measure;
// the harness does so around each side's measured window.

/// One kind of event in the engine. The raw value is its counter's slot.
public enum PipeEvent: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    // msleep, by wmesg (the same order as WaitMessage)
    case sleepPipelk, sleepPiperd, sleepPipdww, sleepPipdwc, sleepPipdwt, sleepPipbww, sleepPipewr,
         sleepPipecl, sleepFifoor, sleepFifoow
    /// Sleeps that ended while the thread still spun on the channel, and those that parked.
    case sleepSpun, sleepParked
    /// `wakeup` and `wakeup_one` calls, and those that found a parked thread (a FUTEX_WAKE).
    case wakeup, wakeupFutex
    /// Acquisitions of a pipe pair's mutex that found it held, and those that had to park.
    case mutexContended, mutexParked
    /// `pipe_direct_write` calls, chunks held and published (`pipe_build_write_buffer`), chunks
    /// whose pages were validated while the reader copied the chunk before, clones of a held
    /// chunk into the buffer on interruption (`pipe_clone_write_buffer`).
    case directWrite, directChunk, holdAhead, clone
    /// Buffer reallocations (`pipespace_new` replacing a buffer): to a larger size (growth in
    /// `pipe_write`), to a smaller one (the KVA rule above 3/4 of `maxpipekva`), and refused
    /// (`piperesizefail`).
    case resizeGrow, resizeShrink, resizeFail
    /// Buffered writes whose segment wrapped at the buffer's end (two copies).
    case writeSplit
    /// `pipeselwakeup` calls.
    case selwakeup
    /// KVA arena: buffers allocated, allocations served from cached pages alone (no system
    /// call), and host calls (`mprotect`, `madvise`).
    case arenaAllocate, arenaCacheHit, arenaHostCall

    /// The results column and sysctl-style name: `sleep_piperd`, `direct_chunk`, …
    public var name: String {
        switch self {
        case .sleepPipelk: return "sleep_pipelk"
        case .sleepPiperd: return "sleep_piperd"
        case .sleepPipdww: return "sleep_pipdww"
        case .sleepPipdwc: return "sleep_pipdwc"
        case .sleepPipdwt: return "sleep_pipdwt"
        case .sleepPipbww: return "sleep_pipbww"
        case .sleepPipewr: return "sleep_pipewr"
        case .sleepPipecl: return "sleep_pipecl"
        case .sleepFifoor: return "sleep_fifoor"
        case .sleepFifoow: return "sleep_fifoow"
        case .sleepSpun: return "sleep_spun"
        case .sleepParked: return "sleep_parked"
        case .wakeup: return "wakeup"
        case .wakeupFutex: return "wakeup_futex"
        case .mutexContended: return "mutex_contended"
        case .mutexParked: return "mutex_parked"
        case .directWrite: return "direct_write"
        case .directChunk: return "direct_chunk"
        case .holdAhead: return "hold_ahead"
        case .clone: return "clone"
        case .resizeGrow: return "resize_grow"
        case .resizeShrink: return "resize_shrink"
        case .resizeFail: return "resize_fail"
        case .writeSplit: return "write_split"
        case .selwakeup: return "selwakeup"
        case .arenaAllocate: return "arena_allocate"
        case .arenaCacheHit: return "arena_cache_hit"
        case .arenaHostCall: return "arena_host_call"
        }
    }

    public var description: String { name }

    /// What one count means, for `pipebench columns` and the documentation.
    public var meaning: String {
        switch self {
        case .sleepPipelk: return "msleep in pipelock (\"pipelk\"): the I/O lock was held by another thread."
        case .sleepPiperd: return "msleep in pipe_read (\"piperd\"): the pipe was empty."
        case .sleepPipdww: return "msleep in pipe_direct_write (\"pipdww\"): another direct write was in progress."
        case .sleepPipdwc: return "msleep in pipe_direct_write (\"pipdwc\"): waiting for the buffer to drain before a direct write."
        case .sleepPipdwt: return "msleep in pipe_direct_write (\"pipdwt\"): waiting for the reader to take a held chunk."
        case .sleepPipbww: return "msleep in pipe_write (\"pipbww\"): waiting for a direct write to finish."
        case .sleepPipewr: return "msleep in pipe_write (\"pipewr\"): the buffer was full."
        case .sleepPipecl: return "msleep in pipeclose (\"pipecl\"): waiting for readers and writers to leave."
        case .sleepFifoor: return "msleep in fifo_open (\"fifoor\"): a reader waiting for a writer."
        case .sleepFifoow: return "msleep in fifo_open (\"fifoow\"): a writer waiting for a reader."
        case .sleepSpun: return "Sleeps that ended while the thread was still spinning on the channel."
        case .sleepParked: return "Sleeps that parked the thread (a futex wait)."
        case .wakeup: return "wakeup and wakeup_one calls."
        case .wakeupFutex: return "Of those, the ones that found a parked thread and made a FUTEX_WAKE."
        case .mutexContended: return "Acquisitions of a pipe pair's mutex that found it held."
        case .mutexParked: return "Of those, the ones that parked (a futex wait)."
        case .directWrite: return "pipe_direct_write calls (writes taking the direct path)."
        case .directChunk: return "Chunks of the writer's pages held and published to the reader (pipe_build_write_buffer)."
        case .holdAhead: return "Chunks whose pages were validated while the reader copied the chunk before."
        case .clone: return "Held chunks copied into the buffer on interruption (pipe_clone_write_buffer)."
        case .resizeGrow: return "Buffers replaced by a larger one (pipe_write's growth)."
        case .resizeShrink: return "Buffers replaced by a smaller one (the KVA rule above 3/4 of maxpipekva)."
        case .resizeFail: return "Resizes refused for want of KVA (piperesizefail)."
        case .writeSplit: return "Buffered write segments that wrapped at the buffer's end (two copies)."
        case .selwakeup: return "pipeselwakeup calls."
        case .arenaAllocate: return "Buffers allocated in the KVA arena."
        case .arenaCacheHit: return "Allocations served from cached pages alone (no system call)."
        case .arenaHostCall: return "Host calls of the arena (mprotect, madvise)."
        }
    }

    /// The event counted when a thread sleeps with `wmesg`.
    static func sleep(_ wmesg: WaitMessage) -> PipeEvent { PipeEvent(rawValue: wmesg.rawValue)! }

    /// Counts one event in the calling thread.
    @inline(__always) func count() { pb_event_count(Int32(rawValue)) }

    /// Whether this build counts events (a build with `-Xcc -DPB_NO_EVENTS` does not: the
    /// one the counting's cost is measured against).
    public static var counted: Bool { pb_events_counted() != 0 }
}

/// Counts of every `PipeEvent`: one thread's so far (`thisThread`), or the difference of two
/// such readings.
public struct PipeEventCounts: Sendable, Equatable, Codable {
    private var counts: [UInt64]

    public init() { counts = [UInt64](repeating: 0, count: PipeEvent.allCases.count) }

    /// The calling thread's counts since it started.
    public static var thisThread: PipeEventCounts {
        var slots = [UInt64](repeating: 0, count: Int(PB_EVENT_SLOTS))
        slots.withUnsafeMutableBufferPointer { pb_thread_events_copy($0.baseAddress) }
        var c = PipeEventCounts()
        for e in PipeEvent.allCases { c.counts[e.rawValue] = slots[e.rawValue] }
        return c
    }

    public subscript(_ event: PipeEvent) -> UInt64 {
        get { counts[event.rawValue] }
        set { counts[event.rawValue] = newValue }
    }

    /// Sleeps at every site together.
    public var sleeps: UInt64 { PipeEvent.allCases.prefix(WaitMessage.allCases.count).reduce(0) { $0 + self[$1] } }

    public static func - (a: PipeEventCounts, b: PipeEventCounts) -> PipeEventCounts {
        var d = PipeEventCounts()
        for e in PipeEvent.allCases { d[e] = a[e] &- b[e] }
        return d
    }

    public static func + (a: PipeEventCounts, b: PipeEventCounts) -> PipeEventCounts {
        var d = PipeEventCounts()
        for e in PipeEvent.allCases { d[e] = a[e] &+ b[e] }
        return d
    }

    // JSON: an object of the events' names.
    public init(from decoder: Decoder) throws {
        let byName = try [String: UInt64](from: decoder)
        self.init()
        for e in PipeEvent.allCases { self[e] = byName[e.name] ?? 0 }
    }

    public func encode(to encoder: Encoder) throws {
        try Dictionary(uniqueKeysWithValues: PipeEvent.allCases.map { ($0.name, self[$0]) }).encode(to: encoder)
    }
}
