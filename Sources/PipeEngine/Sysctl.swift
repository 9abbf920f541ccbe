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

extension PipeSystem {
    /// Every sysctl the engine knows, in a stable order.
    public static var sysctls: [SysctlDescription] {
        let d = PipeConfiguration()
        return [
            .init(name: "kern.ipc.maxpipekva", access: .tunable, description: "Pipe KVA limit",
                  defaultValue: d.maxpipekva),
            .init(name: "kern.ipc.pipekva", access: .readOnly, description: "Pipe KVA usage",
                  defaultValue: nil),
            .init(name: "kern.ipc.pipefragretry", access: .readOnly,
                  description: "Pipe allocation retries due to fragmentation", defaultValue: nil),
            .init(name: "kern.ipc.pipeallocfail", access: .readOnly,
                  description: "Pipe allocation failures", defaultValue: nil),
            .init(name: "kern.ipc.piperesizefail", access: .readOnly,
                  description: "Pipe resize failures", defaultValue: nil),
            .init(name: "kern.ipc.piperesizeallowed", access: .readWrite,
                  description: "Pipe resizing allowed", defaultValue: d.piperesizeallowed ? 1 : 0),
            .init(name: "kern.ipc.pipe_mindirect", access: .readWrite,
                  description: "Minimum write size triggering VM optimization",
                  defaultValue: d.pipeMindirect),
            .init(name: "kern.ipc.pipes", access: .readOnly, description: "Live pipe pairs",
                  defaultValue: nil),
            .init(name: "engine.pipe_size", access: .tunable,
                  description: "PIPE_SIZE: initial forward buffer size", defaultValue: d.pipeSize),
            .init(name: "engine.big_pipe_size", access: .tunable,
                  description: "BIG_PIPE_SIZE: largest buffer size", defaultValue: d.bigPipeSize),
            .init(name: "engine.small_pipe_size", access: .tunable,
                  description: "SMALL_PIPE_SIZE: reverse and low-KVA buffer size",
                  defaultValue: d.smallPipeSize),
            .init(name: "engine.pipenpages", access: .tunable,
                  description: "PIPENPAGES: pages one direct write may hold",
                  defaultValue: d.pipeNPages),
            .init(name: "engine.hold", access: .tunable,
                  description: "Direct-write page hold: 0 none, 1 populate, 2 mlock",
                  defaultValue: HoldStrategy.allCases.firstIndex(of: d.hold)!),
            .init(name: "engine.copy", access: .tunable,
                  description: "Buffered-write copy: 0 cached, 1 streaming (non-temporal stores)",
                  defaultValue: CopyStrategy.allCases.firstIndex(of: d.copy)!),
            .init(name: "engine.spin_ns", access: .readWrite,
                  description: "Longest spin before a sleeping thread parks (0: always park)",
                  defaultValue: d.wait.maxSpinNanoseconds),
            .init(name: "engine.direct_writes", access: .readOnly,
                  description: "Chunks moved by the direct path", defaultValue: nil),
            .init(name: "engine.direct_bytes", access: .readOnly,
                  description: "Bytes moved by the direct path", defaultValue: nil),
            .init(name: "engine.clone_writes", access: .readOnly,
                  description: "Direct writes cloned into the buffer on interruption",
                  defaultValue: nil),
            .init(name: "engine.hold_fallbacks", access: .readOnly,
                  description: "mlock refusals that fell back to a populate hold",
                  defaultValue: nil),
            .init(name: "engine.holds_ahead", access: .readOnly,
                  description: "Direct-write chunks whose pages were validated while the reader copied the chunk before",
                  defaultValue: nil),
            .init(name: "engine.held_pages", access: .readOnly,
                  description: "Writer pages held right now", defaultValue: nil),
            .init(name: "engine.resizes", access: .readOnly,
                  description: "Buffer reallocations (growth and shrink)", defaultValue: nil),
            .init(name: "engine.arena_cache", access: .tunable,
                  description: "Freed buffer bytes kept read-write for reuse (0: none)",
                  defaultValue: d.arenaCacheBytes),
            .init(name: "engine.arena_cached", access: .readOnly,
                  description: "Freed buffer bytes kept read-write right now", defaultValue: nil),
            .init(name: "engine.arena_mappings", access: .readOnly,
                  description: "Host mappings (runs of one protection) the arena holds", defaultValue: nil),
            .init(name: "engine.host_map_refusals", access: .readOnly,
                  description: "Buffer mappings the host refused (vm.max_map_count), apart from no room",
                  defaultValue: nil),
        ]
    }

    /// `sysctl(name)`: the current value. ENOENT for an unknown name.
    public func sysctl(_ name: String) throws(Errno) -> Int {
        let k = kernel
        switch name {
        case "kern.ipc.maxpipekva": return k.maxpipekva
        case "kern.ipc.pipekva": return k.amountpipekva.load()
        case "kern.ipc.pipefragretry": return k.pipefragretry.load()
        case "kern.ipc.pipeallocfail": return k.pipeallocfail.load()
        case "kern.ipc.piperesizefail": return k.piperesizefail.load()
        case "kern.ipc.piperesizeallowed": return k.piperesizeallowed.load()
        case "kern.ipc.pipe_mindirect": return k.pipe_mindirect.load()
        case "kern.ipc.pipes": return k.pipes.load()
        case "engine.pipe_size": return k.PIPE_SIZE
        case "engine.big_pipe_size": return k.BIG_PIPE_SIZE
        case "engine.small_pipe_size": return k.SMALL_PIPE_SIZE
        case "engine.pipenpages": return k.PIPENPAGES
        case "engine.hold": return HoldStrategy.allCases.firstIndex(of: k.hold)!
        case "engine.copy": return k.streamingCopy ? 1 : 0   // what is in effect: 0 on non-x86-64
        case "engine.spin_ns": return k.spinNanoseconds.load()
        case "engine.direct_writes": return k.directWrites.load()
        case "engine.direct_bytes": return k.directBytes.load()
        case "engine.clone_writes": return k.cloneWrites.load()
        case "engine.hold_fallbacks": return k.holdFallbacks.load()
        case "engine.arena_mappings": return k.arena.mappings
        case "engine.host_map_refusals": return k.arena.refusals
        case "engine.holds_ahead": return k.holdsAhead.load()
        case "engine.held_pages": return k.heldPages.load()
        case "engine.resizes": return k.resizes.load()
        case "engine.arena_cache": return k.arena.cacheBytes
        case "engine.arena_cached": return k.arena.cached
        default: throw .noSuchEntry
        }
    }

    /// `sysctl(name, new value)`. Read-only and boot-time (RDTUN) names are EPERM, as
    /// FreeBSD answers a write to them; `pipe_mindirect <= PIPE_BUF` is EINVAL
    /// (`sysctl_handle_pipe_mindirect`); unknown names are ENOENT.
    public func sysctl(_ name: String, set value: Int) throws(Errno) {
        let k = kernel
        switch name {
        case "kern.ipc.piperesizeallowed":
            // SYSCTL_INT: any int is stored; the seed tests `piperesizeallowed == 1`.
            guard let v = Int32(exactly: value) else { throw .invalidArgument }
            k.piperesizeallowed.store(Int(v))
        case "kern.ipc.pipe_mindirect":
            // Don't allow pipe_mindirect to be set so low that we violate atomicity.
            if value <= PIPE_BUF { throw .invalidArgument }
            k.pipe_mindirect.store(value)
        case "engine.spin_ns":
            if value < 0 { throw .invalidArgument }
            k.spinNanoseconds.store(value)
        default:
            if PipeSystem.sysctls.contains(where: { $0.name == name }) { throw .operationNotPermitted }
            throw .noSuchEntry
        }
    }
}
