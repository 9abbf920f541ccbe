/// One sysctl of the engine: FreeBSD's `kern.ipc.*` names, plus `engine.*` for what this
/// engine adds (FreeBSD's compile-time sizes, the hold and wait strategies, and counters).
public struct SysctlDescription: Sendable, Hashable {
    public enum Access: String, Sendable { case readOnly = "RD", readWrite = "RW", tunable = "RDTUN" }
    public let name: String
    public let access: Access
    public let description: String
    /// The value a new instance starts with (its default configuration), or nil for counters.
    public let defaultValue: Int?
}

/// A sysctl that no tool sets by name: the counters, and the sizes the engine derives or
/// takes only from `PipeConfiguration` (`PIPENPAGES`, `arenaCacheBytes`).
struct EngineSysctl: Sendable {
    let name: String
    let access: SysctlDescription.Access
    let description: String
    /// A new instance's value, or nil for counters.
    let defaultValue: (@Sendable (PipeConfiguration) -> Int)?
    let current: @Sendable (PipeKernel) -> Int

    /// Every such sysctl, in a stable order (after the tunables of `EngineTunable.all`).
    static let all: [EngineSysctl] = [
        .init(name: "kern.ipc.pipekva", access: .readOnly, description: "Pipe KVA usage",
              defaultValue: nil, current: { $0.amountpipekva.load() }),
        .init(name: "kern.ipc.pipefragretry", access: .readOnly,
              description: "Pipe allocation retries due to fragmentation",
              defaultValue: nil, current: { $0.pipefragretry.load() }),
        .init(name: "kern.ipc.pipeallocfail", access: .readOnly, description: "Pipe allocation failures",
              defaultValue: nil, current: { $0.pipeallocfail.load() }),
        .init(name: "kern.ipc.piperesizefail", access: .readOnly, description: "Pipe resize failures",
              defaultValue: nil, current: { $0.piperesizefail.load() }),
        .init(name: "engine.pipes", access: .readOnly, description: "Live pipe pairs (not a FreeBSD sysctl)",
              defaultValue: nil, current: { $0.pipes.load() }),
        .init(name: "engine.pipenpages", access: .tunable,
              description: "PIPENPAGES: pages one direct write may hold",
              defaultValue: { $0.pipeNPages }, current: { $0.PIPENPAGES }),
        .init(name: "engine.direct_writes", access: .readOnly, description: "Chunks moved by the direct path",
              defaultValue: nil, current: { $0.directWrites.load() }),
        .init(name: "engine.direct_bytes", access: .readOnly, description: "Bytes moved by the direct path",
              defaultValue: nil, current: { $0.directBytes.load() }),
        .init(name: "engine.clone_writes", access: .readOnly,
              description: "Direct writes cloned into the buffer on interruption",
              defaultValue: nil, current: { $0.cloneWrites.load() }),
        .init(name: "engine.hold_fallbacks", access: .readOnly,
              description: "mlock refusals that fell back to a populate hold",
              defaultValue: nil, current: { $0.holdFallbacks.load() }),
        .init(name: "engine.holds_ahead", access: .readOnly,
              description: "Direct-write chunks whose pages were validated while the reader copied the chunk before",
              defaultValue: nil, current: { $0.holdsAhead.load() }),
        .init(name: "engine.held_pages", access: .readOnly, description: "Writer pages held right now",
              defaultValue: nil, current: { $0.heldPages.load() }),
        .init(name: "engine.resizes", access: .readOnly, description: "Buffer reallocations (growth and shrink)",
              defaultValue: nil, current: { $0.resizes.load() }),
        .init(name: "engine.arena_cache", access: .tunable,
              description: "Freed buffer bytes kept read-write for reuse (0: none)",
              defaultValue: { $0.arenaCacheBytes }, current: { $0.arena.cacheBytes }),
        .init(name: "engine.arena_cached", access: .readOnly,
              description: "Freed buffer bytes kept read-write right now",
              defaultValue: nil, current: { $0.arena.cached }),
        .init(name: "engine.arena_mappings", access: .readOnly,
              description: "Host mappings (runs of one protection) the arena holds",
              defaultValue: nil, current: { $0.arena.mappings }),
        .init(name: "engine.host_map_refusals", access: .readOnly,
              description: "Buffer mappings the host refused (vm.max_map_count), apart from no room",
              defaultValue: nil, current: { $0.arena.refusals }),
    ]
}

extension PipeSystem {
    /// Every sysctl the engine knows, in a stable order: the tunables (`EngineTunable.all`),
    /// then the counters and the other sizes.
    public static let sysctls: [SysctlDescription] = {
        let d = PipeConfiguration()
        return EngineTunable.all.map {
            SysctlDescription(name: $0.sysctl, access: $0.access, description: $0.sysctlDescription,
                              defaultValue: $0.value(in: d))
        } + EngineSysctl.all.map {
            SysctlDescription(name: $0.name, access: $0.access, description: $0.description,
                              defaultValue: $0.defaultValue?(d))
        }
    }()

    /// Reading a sysctl by name: the tunables' and the others'.
    private static let readers: [String: @Sendable (PipeKernel) -> Int] = {
        var out: [String: @Sendable (PipeKernel) -> Int] = [:]
        for t in EngineTunable.all { out[t.sysctl] = t.current }
        for s in EngineSysctl.all { out[s.name] = s.current }
        return out
    }()

    /// Run-time (RW) sysctls by name.
    private static let writers: [String: @Sendable (PipeKernel, Int) throws(Errno) -> Void] = {
        var out: [String: @Sendable (PipeKernel, Int) throws(Errno) -> Void] = [:]
        for t in EngineTunable.all { if let store = t.store { out[t.sysctl] = store } }
        return out
    }()

    /// `sysctl(name)`: the current value. ENOENT for an unknown name.
    public func sysctl(_ name: String) throws(Errno) -> Int {
        guard let read = Self.readers[name] else { throw .noSuchEntry }
        return read(kernel)
    }

    /// `sysctl(name, new value)`. Read-only and boot-time (RDTUN) names are EPERM, as
    /// FreeBSD answers a write to them; `pipe_mindirect <= PIPE_BUF` is EINVAL
    /// (`sysctl_handle_pipe_mindirect`); unknown names are ENOENT.
    public func sysctl(_ name: String, set value: Int) throws(Errno) {
        if let store = Self.writers[name] { return try store(kernel, value) }
        if Self.readers[name] != nil { throw .operationNotPermitted }
        throw .noSuchEntry
    }
}
