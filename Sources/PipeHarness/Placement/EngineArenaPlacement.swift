import CNuma
import CPipeSys
import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// The engine's KVA arena for a channel, if it is an engine channel. The one place that knows
/// how to find the arena (`PipeSystem.arenaRange`).
func engineArenaRange(_ channel: ByteChannel) -> UnsafeMutableRawBufferPointer? {
    guard let system = (channel as? EngineBackedChannel)?.engineSystem else { return nil }
    return system.arenaRange
}

/// Channels whose bytes live in a `PipeSystem`'s arena.
protocol EngineBackedChannel {
    var engineSystem: PipeSystem { get }
}

extension EngineChannel: EngineBackedChannel {
    var engineSystem: PipeSystem { system }
}

/// Binds an engine channel's arena to `node` (no-op for other transports, or without a node).
func bindEngineArena(_ channel: ByteChannel, node: Int?) throws {
    guard let node, let arena = engineArenaRange(channel), let base = arena.baseAddress else { return }
    try bindMemory(base, arena.count, toNode: node, what: "engine arena")
}

/// Where the arena's present pages are (nil for transports without an arena).
func queryEngineArena(_ channel: ByteChannel, requestedNode: Int?) -> MemoryLocation? {
    guard let arena = engineArenaRange(channel), let base = arena.baseAddress else { return nil }
    return MemoryLocation.query(base, bytes: arena.count, what: "engine arena", requestedNode: requestedNode)
}
