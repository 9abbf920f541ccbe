import Foundation
import Synchronization
import Testing
@testable import PipeHarness
#if canImport(Glibc)
import Glibc
#endif

/// No descriptor the harness makes reaches a child that another thread spawns at the same
/// moment. The children here are spawned the way any other code in a user's process spawns
/// them (plain `posix_spawn`, every inheritable descriptor inherited), and each one's
/// `/proc/<pid>/fd` is read while it runs: it must hold its three standard descriptors and
/// nothing else. Meanwhile, the transports' descriptors are made and closed, and writing after
/// the reader left must end in EPIPE.
@Suite struct DescriptorInheritanceTests {
    static let transports: [TransportKind] = [.linuxPipe, .linuxVmsplice, .unixSocket]

    @Test func childrenSpawnedMeanwhileHoldNoneOfTheHarnessDescriptors() throws {
        let spawnsPerThread = 150
        let running = Atomic<Int>(2)
        // Each child's descriptors beyond 0-2, by what they name ("pipe:[ino]"). The test
        // runner's own inheritable descriptors show up there too; only the harness's count.
        let spawners = try (0..<2).map { _ in
            try WorkerThread<Set<String>>.start {
                defer { running.subtract(1, ordering: .releasing) }
                var held: Set<String> = []
                for _ in 0..<spawnsPerThread {
                    // The child's standard input: it runs until this write end closes.
                    let stdin = try FD.pipe(what: "child stdin")
                    var r = stdin.read, w = stdin.write
                    let pid = try ChildProcess.spawn(["cat"], stdin: r, stdout: -1, stderr: -1, closeOthers: false)
                    FD.close(&r)
                    for fd in Self.descriptors(of: pid) where fd > 2 {
                        if let target = Self.target(of: fd, in: pid) { held.insert(target) }
                    }
                    FD.close(&w)
                    #expect(ChildProcess.waitForExit(pid) == 0)
                }
                return held
            }
        }
        let makers = try (0..<2).map { _ in
            try WorkerThread<(made: Set<String>, missedEPIPE: [String])>.start {
                var made: Set<String> = []
                var missed: [String] = []
                let bytes = [UInt8](repeating: 1, count: 1 << 20)
                while running.load(ordering: .acquiring) > 0 {
                    for kind in Self.transports {
                        let channel = try makeChannel(kind, TransportOptions())
                        for fd in Self.ends(of: channel) {
                            if let target = Self.target(of: fd, in: getpid()) { made.insert(target) }
                        }
                        channel.closeReadEnd()
                        // A child between its fork and its exec still holds every descriptor,
                        // close-on-exec or not, so the first writes may fill the buffer; past
                        // it they wait for that exec, then fail. 16 MiB is past any buffer.
                        do {
                            for _ in 0..<16 {
                                try bytes.withUnsafeBytes { try channel.writeAll($0.baseAddress!, $0.count) }
                            }
                            missed.append("\(kind)")
                        } catch HarnessError.peerClosed {
                        }
                        channel.closeWriteEnd()
                    }
                }
                return (made, missed)
            }
        }
        let held = try spawners.map { try $0.join() }.reduce(into: Set<String>()) { $0.formUnion($1) }
        let results = try makers.map { try $0.join() }
        let made = results.reduce(into: Set<String>()) { $0.formUnion($1.made) }
        let leaked = held.intersection(made)
        #expect(!made.isEmpty)
        #expect(leaked.isEmpty, "harness descriptors inherited by children: \(leaked.sorted().prefix(10))")
        let missed = results.flatMap(\.missedEPIPE)
        #expect(missed.isEmpty, "writes without EPIPE after the reader closed: \(missed.prefix(10))")
    }

    static func ends(of channel: ByteChannel) -> [Int32] {
        switch channel {
        case let c as KernelPipeChannel: return [c.readFD, c.writeFD]
        case let c as VmspliceChannel: return [c.readFD, c.writeFD]
        case let c as UnixSocketChannel: return [c.readFD, c.writeFD]
        default: return []
        }
    }

    /// What descriptor `fd` of process `pid` names ("pipe:[1234]", "socket:[99]", a path).
    static func target(of fd: some BinaryInteger, in pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
    }

    /// The harness's own child runner gives its child the three standard descriptors only,
    /// even those this process left inheritable.
    @Test func childProcessClosesInheritableDescriptors() throws {
        var fds: [Int32] = [-1, -1]
        #expect(fds.withUnsafeMutableBufferPointer { Glibc.pipe($0.baseAddress!) } == 0)
        defer { _ = Glibc.close(fds[0]); _ = Glibc.close(fds[1]) }
        let child = try ChildProcess.run(["sh", "-c", "ls /proc/self/fd"])
        #expect(child.status == 0)
        // ls itself opens /proc/self/fd (fd 3) to list it.
        let listed = child.standardOutput.split(whereSeparator: \.isNewline).compactMap { Int32($0) }
        #expect(listed.sorted() == [0, 1, 2, 3], "\(listed), with \(fds) inheritable here")
    }

    /// A child starts with every signal at its default action and none blocked, whatever this
    /// process ignores or blocks: the harness ignores SIGPIPE (a write to a closed pipe must
    /// be EPIPE here), and an ignored SIGPIPE passed to a child would keep `yes | head` from
    /// ever ending its `yes`.
    @Test func childrenStartWithDefaultSignalActions() throws {
        ignoreSIGPIPE()                 // as every kernel-pipe transport does, once a process
        let child = try ChildProcess.run(["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"])
        #expect(child.status == 0)
        var masks: [String: UInt64] = [:]
        for line in child.standardOutput.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { masks[parts[0]] = UInt64(parts[1], radix: 16) }
        }
        let ignored = try #require(masks["SigIgn"], "\(child.standardOutput)")
        #expect(ignored & (1 << (UInt64(SIGPIPE) - 1)) == 0, "SIGPIPE ignored in the child")
        #expect(masks["SigBlk"] == 0)
    }

    static func descriptors(of pid: Int32) -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) }
    }
}
