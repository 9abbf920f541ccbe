/// The workloads, by the name the command line, the config files, the results' `workload`
/// column and the configuration labels use: the one list of them.
public enum WorkloadKind: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// Throughput of one writer/reader stream.
    case stream
    /// Round-trip latency of a message and its echo.
    case pingpong
    /// K writer/reader pairs at once, each on a pipe of its own.
    case pairs
    /// K writers into one reader that multiplexes their pipes.
    case fanin
    /// A stream after idle pipes have filled the engine's KVA to a tier.
    case kvaPressure = "kva-pressure"

    public var description: String { rawValue }
}
