import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// A channel whose read end can also be read without waiting, for a reader that watches many
/// channels at once (`ReadinessSet`).
public protocol PollableChannel: ByteChannel {
    /// Makes the read end non-blocking (O_NONBLOCK): `read` then waits no more, and
    /// `readIfReady` tells an empty channel from its end.
    func setReadNonBlocking() throws
    /// Bytes read, 0 at end of stream, nil when nothing is there yet (EAGAIN).
    func readIfReady(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int?
}

/// How a reader of many channels learns which are readable.
public enum ReadinessMux: String, Sendable, Codable, CaseIterable {
    /// `poll(2)` over every channel still watched (the engine's `PipeSystem.poll`, or Linux's).
    case poll
    /// The engine's `kqueue`/`kevent`: one `EVFILT_READ` knote per channel (engine only).
    case kqueue
}

/// The read ends of a set of channels, watched for readiness by their reader thread alone.
public protocol ReadinessSet: AnyObject {
    /// Waits until at least one watched channel is readable (or at its end) and puts the
    /// indices of the ready ones into `ready`. Returns how many descriptors the call reported
    /// (0 when interrupted).
    func wait(_ ready: inout [Int]) throws -> Int
    /// Stops watching channel `i`; call it before closing the channel's read end.
    func remove(_ i: Int)
}

/// A readiness set over `channels`, whose read ends it makes non-blocking: engine channels of
/// one `PipeSystem` (poll or kqueue), or kernel pipes (poll).
public func makeReadinessSet(_ channels: [PollableChannel], mux: ReadinessMux) throws -> ReadinessSet {
    for c in channels { try c.setReadNonBlocking() }
    if let engine = channels as? [EngineChannel] { return try EngineReadinessSet(engine, mux: mux) }
    if let kernel = channels as? [KernelPipeChannel] {
        guard mux == .poll else { throw HarnessError.unsupported("Linux has no kqueue: kernel pipes are watched with poll") }
        return KernelPollSet(kernel)
    }
    throw HarnessError.unsupported("a readiness set watches engine channels of one system or kernel pipes, not a mix")
}

// MARK: - engine

/// Engine channels of one `PipeSystem`, watched by the engine's poll or a kqueue of it.
final class EngineReadinessSet: ReadinessSet {
    let system: PipeSystem
    let mux: ReadinessMux
    /// The poll set (a removed channel's entry is -1, which poll skips).
    private let pollSet: UnsafeMutableBufferPointer<PollFD>
    private var kq: Int32 = -1
    /// kevent's event list (one slot per channel), reused by every call so that the kqueue
    /// mux allocates no more than the poll one does.
    private let events: UnsafeMutableBufferPointer<Kevent>
    /// The channel index of each read fd, for kevent's idents.
    private let indexOfFD: [Int32: Int]

    init(_ channels: [EngineChannel], mux: ReadinessMux) throws {
        guard let system = channels.first?.system, channels.allSatisfy({ $0.system === system }) else {
            throw HarnessError.invalidArgument("an engine readiness set watches channels of one PipeSystem")
        }
        self.system = system
        self.mux = mux
        let fds = channels.map(\.readFD)
        indexOfFD = Dictionary(uniqueKeysWithValues: fds.enumerated().map { ($1, $0) })
        pollSet = .allocate(capacity: fds.count)
        for (i, fd) in fds.enumerated() { pollSet[i] = PollFD(fd: fd, events: PollEvents.POLLIN) }
        events = .allocate(capacity: fds.count)
        if mux == .kqueue {
            do {
                kq = try system.kqueue()
                let changes = fds.enumerated().map { i, fd in
                    Kevent(ident: UInt(fd), filter: Kevent.EVFILT_READ, flags: Kevent.EV_ADD, udata: UInt(i))
                }
                _ = try system.kevent(kq, changes: changes, capacity: 0, timeout: 0)
            } catch {
                // Every stored property is set, so deinit runs after this throw: it closes the
                // kqueue and frees the buffers.
                throw HarnessError.system(call: "kqueue/kevent (engine)", errno: error.rawValue, context: "readiness set registration")
            }
        }
    }

    deinit {
        if kq >= 0 { try? system.close(kq) }
        pollSet.deallocate()
        events.deallocate()
    }

    /// The channel's knote goes when its read end closes (knote_fdclose).
    func remove(_ i: Int) { pollSet[i].fd = -1 }

    func wait(_ ready: inout [Int]) throws -> Int {
        ready.removeAll(keepingCapacity: true)
        switch mux {
        case .poll:
            let n: Int
            do { n = try system.poll(pollSet, timeout: -1) } catch {
                if error == .interrupted { return 0 }
                throw HarnessError.system(call: "poll (engine)", errno: error.rawValue, context: "readiness set")
            }
            for i in pollSet.indices where pollSet[i].fd >= 0 && pollSet[i].revents != 0 { ready.append(i) }
            return n
        case .kqueue:
            let n: Int
            do {
                n = try system.kevent(kq, changes: UnsafeBufferPointer(start: nil, count: 0), events: events, timeout: nil)
            } catch {
                if error == .interrupted { return 0 }
                throw HarnessError.system(call: "kevent (engine)", errno: error.rawValue, context: "readiness set")
            }
            for e in events[0..<n] {
                if e.flags & Kevent.EV_ERROR != 0 {
                    throw HarnessError.system(call: "kevent (engine)", errno: Int32(e.data), context: "event for fd \(e.ident)")
                }
                if let i = indexOfFD[Int32(e.ident)] { ready.append(i) }
            }
            return n
        }
    }
}

extension EngineChannel: PollableChannel {
    public func setReadNonBlocking() throws {
        do { _ = try system.fcntl(readFD, F_SETFL, O_NONBLOCK) } catch {
            throw HarnessError.system(call: "fcntl(F_SETFL, O_NONBLOCK) (engine)", errno: error.rawValue, context: what)
        }
    }

    public func readIfReady(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int? {
        while true {
            do {
                return try system.read(readFD, base, count)
            } catch .interrupted {
                continue
            } catch .wouldBlock {
                return nil
            } catch {
                throw HarnessError.system(call: "read (engine)", errno: error.rawValue, context: what)
            }
        }
    }
}

// MARK: - Linux

/// Kernel pipes watched by Linux's poll(2).
final class KernelPollSet: ReadinessSet {
    private let pollSet: UnsafeMutableBufferPointer<pollfd>

    init(_ channels: [KernelPipeChannel]) {
        pollSet = .allocate(capacity: channels.count)
        for (i, c) in channels.enumerated() { pollSet[i] = pollfd(fd: c.readFD, events: Int16(POLLIN), revents: 0) }
    }

    deinit { pollSet.deallocate() }

    func remove(_ i: Int) { pollSet[i].fd = -1 }

    func wait(_ ready: inout [Int]) throws -> Int {
        ready.removeAll(keepingCapacity: true)
        let n = Glibc.poll(pollSet.baseAddress, nfds_t(pollSet.count), -1)
        if n < 0 {
            let e = errno
            if e == EINTR { return 0 }
            throw HarnessError.system(call: "poll", errno: e, context: "readiness set of kernel pipes")
        }
        for i in pollSet.indices where pollSet[i].fd >= 0 && pollSet[i].revents != 0 { ready.append(i) }
        return Int(n)
    }
}

extension KernelPipeChannel: PollableChannel {
    public func setReadNonBlocking() throws {
        let flags = fcntl(readFD, F_GETFL)
        if flags < 0 || fcntl(readFD, F_SETFL, flags | O_NONBLOCK) != 0 {
            throw HarnessError.system(call: "fcntl(F_SETFL, O_NONBLOCK)", errno: errno, context: what)
        }
    }

    public func readIfReady(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int? {
        while true {
            let n = Glibc.read(readFD, base, count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw HarnessError.system(call: "read", errno: e, context: what)
        }
    }
}
