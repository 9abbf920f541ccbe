import PipeEngine

/// PipeEngine's knobs as a transport option: the whole configuration of the simulated kernel
/// the channel runs in (pipe_mindirect, buffer sizes, maxpipekva, hold and wait strategies).
public struct EngineOptions: Sendable, Hashable {
    public var configuration: PipeConfiguration

    public init(configuration: PipeConfiguration = PipeConfiguration()) {
        self.configuration = configuration
    }
}

/// One engine pipe used in one direction through its descriptor surface: the writer writes
/// fd[1], the reader reads fd[0] (fd[1] -> fd[0] is the pipe's PIPE_SIZE forward buffer).
/// Each channel runs in a `PipeSystem` of its own, so channels never share counters or KVA.
public final class EngineChannel: ByteChannel, @unchecked Sendable {
    public let system: PipeSystem
    public let readFD: Int32
    public let writeFD: Int32
    /// Names the channel in error messages when there are many ("fanin pipe 3"); "" for one.
    public let what: String

    public init(_ options: EngineOptions) throws {
        what = ""
        do {
            system = try PipeSystem(options.configuration)
        } catch {
            throw HarnessError.invalidArgument("engine configuration: \(error)")
        }
        do {
            (readFD, writeFD) = try system.pipe2()
        } catch {
            throw HarnessError.system(call: "pipe2 (engine)", errno: error.rawValue, context: "")
        }
    }

    /// Shares `system` with other channels (the kva-pressure workload fills it first; the
    /// fan-in's pipes are all in one).
    public init(system: PipeSystem, what: String = "") throws {
        self.system = system
        self.what = what
        do {
            (readFD, writeFD) = try system.pipe2()
        } catch {
            throw HarnessError.system(call: "pipe2 (engine)", errno: error.rawValue, context: what)
        }
    }

    public func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        while true {
            do {
                return try system.write(writeFD, base, count)
            } catch .interrupted {
                continue
            } catch .brokenPipe {
                throw HarnessError.peerClosed("engine write\(what.isEmpty ? "" : " (\(what))"): the read end is closed (EPIPE)")
            } catch {
                throw HarnessError.system(call: "write (engine)", errno: error.rawValue, context: what)
            }
        }
    }

    public func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        while true {
            do {
                return try system.read(readFD, base, count)
            } catch .interrupted {
                continue
            } catch {
                throw HarnessError.system(call: "read (engine)", errno: error.rawValue, context: what)
            }
        }
    }

    public func closeWriteEnd() { try? system.close(writeFD) }
    public func closeReadEnd() { try? system.close(readFD) }
}

func makeEngineChannel(_ options: TransportOptions) throws -> ByteChannel {
    try EngineChannel(options.engine)
}
