import Foundation
import Glibc
import Testing
@testable import PipeEngine

// The randomized model-based test: random sequences of non-blocking operations run
// against a fresh PipeSystem and against PipeModel (PipeModel.swift), compared after every
// step: the returned count or errno, the bytes read (byte-exact), the buffer of every open
// descriptor (size, cnt, in, out via kinfo), poll's and kevent's answers, FIONREAD, fstat,
// every counter and the arena's free extents. After each sequence everything is closed and the
// engine must have leaked nothing: pipekva 0, one whole free extent, no held pages, no live
// pairs, no descriptors.
//
// Environment:
//   PIPEBENCH_MODEL_SEQUENCES=N   run N sequences (default below; the long mode)
//   PIPEBENCH_MODEL_SEED=S        replay one sequence (decimal or 0x-hex), printing every step
//   PIPEBENCH_MODEL_BASE_SEED=B   derive the sequence seeds from B instead of the fixed default
//   PIPEBENCH_MODEL_VERBOSE=1     print every step of every sequence (use with small N)
//
// A divergence is shrunk (operations removed, sizes halved, while it still diverges) and
// reported as the minimal sequence, with the seed and the command that replays it.

/// A divergence between the engine and the model at one step.
struct ModelDivergence: Error {
    var step: Int
    var message: String
}

/// What one sequence did.
struct ModelRunResult {
    var ops: [ModelOp] = []
    var trace: [String] = []
    var executed = 0
    var bytesChecked = 0
    var divergence: ModelDivergence?
    /// What the sequence exercised (summed into the coverage line).
    var coverage = ModelCoverage()
}

/// How often the interesting decisions were taken, summed over sequences.
struct ModelCoverage {
    var counts = [Int](repeating: 0, count: ModelCoverage.names.count)
    static let names = ["pipe2 ENOMEM", "pipefragretry", "piperesizefail", "resizes", "EPIPE",
                        "write EAGAIN", "short writes", "read EAGAIN", "EOF reads", "EBADF",
                        "POLLHUP", "kevent EV_EOF", "sequences reaching > 3/4 KVA"]
    static func += (a: inout ModelCoverage, b: ModelCoverage) {
        for i in a.counts.indices { a.counts[i] += b.counts[i] }
    }
    mutating func note(_ op: ModelOp, _ o: Outcome) {
        if o.errno == .badFileDescriptor { counts[9] += 1 }
        switch op {
        case .pipe2: if o.errno == .noMemory { counts[0] += 1 }
        case .write(_, let n):
            if o.errno == .brokenPipe { counts[4] += 1 }
            if o.errno == .wouldBlock { counts[5] += 1 }
            if o.errno == nil, o.values[0] < n { counts[6] += 1 }
        case .read(_, let n):
            if o.errno == .wouldBlock { counts[7] += 1 }
            if o.errno == nil, o.values[0] == 0, n > 0 { counts[8] += 1 }
        case .poll:
            if o.values.dropFirst().contains(where: { Int16($0) & PollEvents.POLLHUP != 0 }) { counts[10] += 1 }
        case .kevent:
            if o.values.count == 4 && UInt16(o.values[2]) & Kevent.EV_EOF != 0 { counts[11] += 1 }
        default: break
        }
    }
    var summary: String {
        zip(ModelCoverage.names, counts).map { "\($0) \($1)" }.joined(separator: ", ")
    }
}

enum ModelHarness {
    static let defaultSequences = 20_000
    static let defaultBaseSeed: UInt64 = 0x5049_5045_0008_0001
    static let kvaChoices = [64 * 1024, 64 * 1024, 96 * 1024, 128 * 1024, 192 * 1024, 256 * 1024]

    /// The i-th sequence's seed.
    static func sequenceSeed(base: UInt64, _ i: Int) -> UInt64 {
        var g = SplitMix64(seed: base &+ UInt64(i) &* 0x1_0000_0001)
        return g.next()
    }

    /// What a seed decides before the first operation: the arena size, the length, and
    /// whether the sequence churns (many creations and closes: fragmentation, pipefragretry,
    /// ENOMEM) or mostly moves data.
    static func setup(_ rng: inout SplitMix64) -> (kva: Int, length: Int, churn: Bool) {
        let kva = kvaChoices[rng.below(kvaChoices.count)]
        let churn = rng.chance(30)
        let length = churn ? rng.inRange(20, 80) : rng.inRange(6, 40)
        return (kva, length, churn)
    }

    // MARK: - generation

    /// The next random operation, chosen with the model's state in view (mostly open
    /// descriptors, sizes around the free space and the queued count).
    static func generate(_ rng: inout SplitMix64, _ m: PipeModel, churn: Bool) -> ModelOp {
        let open = m.openFDs
        func fd() -> Int32 {
            if open.isEmpty || rng.chance(4) { return Int32(rng.below(10)) }
            return open[rng.below(open.count)]
        }
        if churn {
            let c = rng.below(100)
            if c < 30 { return .pipe2(cloexec: false) }
            if c < 50 { return .close(fd: fd()) }
        }
        let roll = rng.below(100)
        if open.count < 2 && roll < 60 { return .pipe2(cloexec: rng.chance(20)) }
        switch roll {
        case 0..<13:
            return .pipe2(cloexec: rng.chance(20))
        case 13..<43:
            let f = fd()
            var space = 0
            if let i = m.fds[f] { space = m.pipes[i ^ 1].size - m.pipes[i ^ 1].cnt }
            let r = rng.below(100)
            let n: Int
            switch r {
            case 0..<4: n = 0
            case 4..<24: n = rng.inRange(1, PIPE_BUF)
            case 24..<30: n = PIPE_BUF + rng.below(2)
            case 30..<45: n = max(0, space + rng.below(3) - 1)
            case 45..<65: n = rng.inRange(PIPE_BUF + 1, 16 * 1024)
            default: n = rng.inRange(1, 100_000)
            }
            return .write(fd: f, count: n)
        case 43..<67:
            let f = fd()
            let cnt = m.fds[f].map { m.pipes[$0].cnt } ?? 0
            let r = rng.below(100)
            let n: Int
            switch r {
            case 0..<3: n = 0
            case 3..<25: n = max(0, cnt + rng.below(3) - 1)
            case 25..<55: n = rng.inRange(1, 4096)
            default: n = rng.inRange(1, 100_000)
            }
            return .read(fd: f, count: n)
        case 67..<75:
            return .close(fd: fd())
        case 75..<78:
            return .fionread(fd: fd())
        case 78..<81:
            return .fstat(fd: fd())
        case 81..<83:
            return .kinfo(fd: fd())
        case 83..<89:
            let events: [Int16] = [PollEvents.POLLIN, PollEvents.POLLOUT,
                                   PollEvents.POLLIN | PollEvents.POLLOUT,
                                   PollEvents.POLLRDNORM | PollEvents.POLLWRNORM, 0,
                                   PollEvents.POLLIN | PollEvents.POLLOUT | PollEvents.POLLRDNORM
                                       | PollEvents.POLLWRNORM]
            let list = (0..<rng.inRange(1, 3)).map { _ in
                PollFD(fd: rng.chance(5) ? -1 : fd(), events: events[rng.below(events.count)])
            }
            return .poll(list)
        case 89..<93:
            var f = fd()
            if f == m.lowestFreeFD(), let any = open.first { f = any }   // not the kqueue's own
            return .kevent(fd: f, filter: rng.chance(50) ? Kevent.EVFILT_READ : Kevent.EVFILT_WRITE)
        case 93..<97:
            let values = [1, 1, 1, 0, 0, 2, -1]
            return .setResizeAllowed(values[rng.below(values.count)])
        default:
            let values = [0, PIPE_BUF, PIPE_BUF + 1, 4096, 8192, 16384, 65536, 1 << 20]
            return .setMindirect(values[rng.below(values.count)])
        }
    }

    // MARK: - the engine side

    static func engineApply(_ op: ModelOp, _ sys: PipeSystem, source: UnsafeRawPointer,
                            scratch: UnsafeMutableRawPointer) -> Outcome {
        do {
            switch op {
            case .pipe2(let cloexec):
                let (a, b) = try sys.pipe2(O_NONBLOCK | (cloexec ? O_CLOEXEC : 0))
                return .ok(Int(a), Int(b))
            case .write(let fd, let n):
                return .ok(try sys.write(fd, source, n))
            case .read(let fd, let n):
                return .ok(try sys.read(fd, scratch, n))
            case .close(let fd):
                try sys.close(fd)
                return .ok(0)
            case .fionread(let fd):
                return .ok(try sys.bytesReadable(fd))
            case .fstat(let fd):
                let st = try sys.fstat(fd)
                return .ok(st.st_size, st.st_blocks, st.st_blksize, Int(st.st_mode), Int(st.st_ino))
            case .kinfo(let fd):
                guard let k = try sys.kinfo(fd).pipe else { return .unchecked }   // (the model has no FIFOs)
                return .ok(k.kf_pipe_buffer_cnt, k.kf_pipe_buffer_in, k.kf_pipe_buffer_out,
                           k.kf_pipe_buffer_size)
            case .poll(let list):
                var fds = list
                let n = try sys.poll(&fds, timeout: 0)
                return Outcome(errno: nil, values: [n] + fds.map { Int($0.revents) })
            case .kevent(let fd, let filter):
                let kq = try sys.kqueue()
                defer { try? sys.close(kq) }
                let change = Kevent(ident: UInt(UInt32(bitPattern: fd)), filter: filter,
                                    flags: Kevent.EV_ADD | Kevent.EV_ONESHOT)
                let events = try sys.kevent(kq, changes: [change], capacity: 4, timeout: 0)
                guard let e = events.first else { return .ok(0) }
                return .ok(events.count, Int(e.filter),
                           Int(e.flags & (Kevent.EV_EOF | Kevent.EV_ERROR)), e.data)
            case .setResizeAllowed(let v):
                try sys.sysctl("kern.ipc.piperesizeallowed", set: v)
                return .ok(0)
            case .setMindirect(let v):
                try sys.sysctl("kern.ipc.pipe_mindirect", set: v)
                return .ok(0)
            }
        } catch {
            return .fail(error)
        }
    }

    /// The engine's side of `PipeModel.snapshot`, for the descriptors the model has open.
    static func engineSnapshot(_ sys: PipeSystem, fds: [Int32], sigpipes: Int) -> [Int] {
        func sc(_ name: String) -> Int { (try? sys.sysctl(name)) ?? -1 }
        var s = [sc("kern.ipc.pipekva"), sc("kern.ipc.pipefragretry"), sc("kern.ipc.pipeallocfail"),
                 sc("kern.ipc.piperesizefail"), sc("engine.pipes"),
                 sc("kern.ipc.piperesizeallowed"), sc("kern.ipc.pipe_mindirect"),
                 sc("engine.resizes"), sc("engine.direct_writes"), sys.heldPages,
                 sys.openDescriptors, sys.arenaAllocatedBytes, sigpipes]
        let extents = sys.arenaFreeExtents
        s.append(extents.count)
        for e in extents { s += [e.offset, e.bytes] }
        for fd in fds {
            if let k = try? sys.kinfo(fd).pipe {
                s += [Int(fd), k.kf_pipe_buffer_size, k.kf_pipe_buffer_cnt, k.kf_pipe_buffer_in,
                      k.kf_pipe_buffer_out]
            } else {
                s += [Int(fd), -1, -1, -1, -1]
            }
        }
        return s
    }

    // MARK: - one sequence

    /// Runs one sequence against a fresh engine and model: `next` gives the operations (nil
    /// ends the sequence); then every open descriptor is closed and the leak checks run.
    static func run(kva: Int, scratch: UnsafeMutableRawPointer, trace: Bool,
                    next: (PipeModel, Int) -> ModelOp?) -> ModelRunResult {
        var result = ModelRunResult()
        var model = PipeModel(maxpipekva: kva)
        let sys: PipeSystem
        do {
            sys = try quietSystem(smallKVAConfiguration(kva))
        } catch {
            result.divergence = ModelDivergence(step: 0, message: "cannot create the engine: \(error)")
            return result
        }
        let thread = EngineThread.current
        let sigpipeBase = thread.deliveredCount(of: .SIGPIPE)

        func step(_ op: ModelOp, _ index: Int) -> Bool {
            let source = model.writeSource(op.fdForSource)
            var expected: UnsafeRawPointer? = nil
            if case .read(let fd, _) = op { expected = model.readExpectation(fd) }
            let got = engineApply(op, sys, source: source, scratch: scratch)
            let want = model.apply(op)
            result.executed += 1
            result.coverage.note(op, want)
            result.coverage.counts[1] = model.pipefragretry
            result.coverage.counts[2] = model.piperesizefail
            result.coverage.counts[3] = model.resizes
            if model.amountpipekva > 3 * kva / 4 { result.coverage.counts[12] = 1 }
            let line = "\(index + 1). \(op) -> \(want)"
            if got != want && want != .unchecked {
                result.trace.append(line + "   <<< engine: \(got)")
                result.divergence = ModelDivergence(step: index + 1,
                    message: "\(op): the engine returned \(got), the model (the seed) says \(want)")
                return false
            }
            if case .read = op, want.errno == nil, let n = want.values.first, n > 0, let expected {
                if memcmp(scratch, expected, n) != 0 {
                    var k = 0
                    while k < n && scratch.load(fromByteOffset: k, as: UInt8.self)
                            == expected.load(fromByteOffset: k, as: UInt8.self) { k += 1 }
                    result.trace.append(line + "   <<< data differs at byte \(k)")
                    result.divergence = ModelDivergence(step: index + 1,
                        message: "\(op): \(n) bytes read as expected in count, but byte \(k) differs")
                    return false
                }
                result.bytesChecked += n
            }
            let fds = model.openFDs
            let mine = model.snapshot()
            let theirs = engineSnapshot(sys, fds: fds,
                                        sigpipes: thread.deliveredCount(of: .SIGPIPE) - sigpipeBase)
            if mine != theirs {
                let a = PipeModel.describe(mine), b = PipeModel.describe(theirs)
                var diffs: [String] = []
                for k in 0..<max(a.count, b.count) {
                    let x = k < a.count ? a[k] : "-", y = k < b.count ? b[k] : "-"
                    if x != y { diffs.append("model \(x) | engine \(y)") }
                }
                result.trace.append(line + "   <<< state differs: " + diffs.joined(separator: "; "))
                result.divergence = ModelDivergence(step: index + 1,
                    message: "after \(op): " + diffs.joined(separator: "; "))
                return false
            }
            if trace { result.trace.append(line) }
            return true
        }

        var index = 0
        while let op = next(model, index) {
            result.ops.append(op)
            if !step(op, index) { return result }
            index += 1
        }
        // Close everything, then nothing may be left.
        for fd in model.openFDs {
            if !step(.close(fd: fd), index) { return result }
            index += 1
        }
        var leaks: [String] = []
        let pipekva = (try? sys.sysctl("kern.ipc.pipekva")) ?? -1
        if pipekva != 0 { leaks.append("pipekva \(pipekva)") }
        let extents = sys.arenaFreeExtents
        if !(extents.count == 1 && extents[0].offset == 0 && extents[0].bytes == kva) {
            leaks.append("arena free extents \(extents.map { "[\($0.offset), +\($0.bytes))" })")
        }
        if sys.heldPages != 0 { leaks.append("held pages \(sys.heldPages)") }
        let pipes = (try? sys.sysctl("engine.pipes")) ?? -1
        if pipes != 0 { leaks.append("engine.pipes \(pipes)") }
        if sys.openDescriptors != 0 { leaks.append("open descriptors \(sys.openDescriptors)") }
        if !leaks.isEmpty {
            result.divergence = ModelDivergence(step: index,
                message: "leak after closing everything: " + leaks.joined(separator: ", "))
        }
        return result
    }

    /// Replays a fixed list of operations.
    static func replay(kva: Int, _ ops: [ModelOp], scratch: UnsafeMutableRawPointer,
                       trace: Bool = false) -> ModelRunResult {
        run(kva: kva, scratch: scratch, trace: trace) { _, i in i < ops.count ? ops[i] : nil }
    }

    /// The generated sequence of one seed.
    static func runSeed(_ seed: UInt64, scratch: UnsafeMutableRawPointer,
                        trace: Bool = false) -> (kva: Int, result: ModelRunResult) {
        var rng = SplitMix64(seed: seed)
        let (kva, length, churn) = setup(&rng)
        let result = run(kva: kva, scratch: scratch, trace: trace) { model, i in
            i < length ? generate(&rng, model, churn: churn) : nil
        }
        return (kva, result)
    }

    // MARK: - shrinking

    /// The smallest sequence found that still diverges: chunks of operations removed
    /// (halving the chunk size down to one), then write and read sizes halved.
    static func shrink(kva: Int, _ original: [ModelOp], scratch: UnsafeMutableRawPointer) -> [ModelOp] {
        var ops = original
        var budget = 3000
        func fails(_ candidate: [ModelOp]) -> Bool {
            budget -= 1
            return replay(kva: kva, candidate, scratch: scratch).divergence != nil
        }
        var chunk = max(1, ops.count / 2)
        while chunk >= 1 && budget > 0 {
            var removedAny = false
            var i = 0
            while i < ops.count && budget > 0 {
                let end = min(ops.count, i + chunk)
                let candidate = Array(ops[..<i]) + Array(ops[end...])
                if fails(candidate) {
                    ops = candidate
                    removedAny = true
                } else {
                    i += chunk
                }
            }
            if !removedAny { chunk /= 2 }
        }
        // Smaller sizes read better.
        for i in ops.indices where budget > 0 {
            while budget > 0 {
                let smaller: ModelOp
                switch ops[i] {
                case .write(let fd, let n) where n > 1: smaller = .write(fd: fd, count: n / 2)
                case .read(let fd, let n) where n > 1: smaller = .read(fd: fd, count: n / 2)
                default: smaller = ops[i]
                }
                if smaller.countValue == ops[i].countValue { break }
                var candidate = ops
                candidate[i] = smaller
                if fails(candidate) { ops = candidate } else { break }
            }
        }
        return ops
    }

    /// The report for a divergent seed: the minimal sequence, step by step.
    static func report(seed: UInt64, kva: Int, original: ModelRunResult,
                       scratch: UnsafeMutableRawPointer) -> String {
        let minimal = shrink(kva: kva, original.ops, scratch: scratch)
        let rerun = replay(kva: kva, minimal, scratch: scratch, trace: true)
        var lines = [
            "engine and model diverge: \(original.divergence?.message ?? "?")",
            "seed \(seed) (0x\(String(seed, radix: 16))), maxpipekva \(kva / 1024) KiB, "
                + "\(original.ops.count) operations, shrunk to \(minimal.count):",
        ]
        lines += rerun.trace.map { "  " + $0 }
        if rerun.divergence == nil { lines.append("  (the shrunk sequence no longer diverges?)") }
        lines.append("replay: PIPEBENCH_MODEL_SEED=\(seed) swift test --filter ModelTests")
        return lines.joined(separator: "\n")
    }
}

extension ModelOp {
    /// The descriptor whose write source is used (writes only; others ignore it).
    var fdForSource: Int32 {
        if case .write(let fd, _) = self { return fd }
        return -1
    }
    var countValue: Int {
        switch self {
        case .write(_, let n), .read(_, let n): return n
        default: return -1
        }
    }
}

/// Whether this process runs under the thread sanitizer (then the default count is cut).
private func underThreadSanitizer() -> Bool {
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
}

private func environmentSeed(_ name: String) -> UInt64? {
    guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return nil }
    if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
    return UInt64(text)
}

@Suite("the engine against a reference model of the seed")
struct ModelTests {
    /// Tens of thousands of random sequences (PIPEBENCH_MODEL_SEQUENCES=N for more), or one
    /// replayed seed (PIPEBENCH_MODEL_SEED=S).
    @Test func randomSequencesAgreeWithTheModel() throws {
        let env = ProcessInfo.processInfo.environment
        let scratchBytes = 128 * 1024
        if let seed = environmentSeed("PIPEBENCH_MODEL_SEED") {
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
            defer { scratch.deallocate() }
            let (kva, result) = ModelHarness.runSeed(seed, scratch: scratch, trace: true)
            print("model replay of seed \(seed), maxpipekva \(kva / 1024) KiB:")
            for line in result.trace { print("  " + line) }
            if result.divergence != nil {
                Issue.record(Comment(rawValue: ModelHarness.report(seed: seed, kva: kva,
                                                                   original: result, scratch: scratch)))
            } else {
                print("  no divergence (\(result.executed) operations, leak checks passed)")
            }
            return
        }
        let tsan = underThreadSanitizer()
        let sequences = Int(env["PIPEBENCH_MODEL_SEQUENCES"] ?? "")
            ?? (tsan ? ModelHarness.defaultSequences / 40 : ModelHarness.defaultSequences)
        let base = environmentSeed("PIPEBENCH_MODEL_BASE_SEED") ?? ModelHarness.defaultBaseSeed
        let verbose = env["PIPEBENCH_MODEL_VERBOSE"] == "1"
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))

        struct Totals {
            var sequences = 0, operations = 0, bytes = 0, failures: [String] = []
            var coverage = ModelCoverage()
        }
        let totals = Locked(Totals())
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchBytes, alignment: 64)
            defer { scratch.deallocate() }
            var mine = Totals()
            var i = w
            while i < sequences {
                let seed = ModelHarness.sequenceSeed(base: base, i)
                let (kva, result) = ModelHarness.runSeed(seed, scratch: scratch, trace: verbose)
                mine.sequences += 1
                mine.operations += result.executed
                mine.bytes += result.bytesChecked
                mine.coverage += result.coverage
                if verbose {
                    print("seed \(seed), maxpipekva \(kva / 1024) KiB:\n  "
                          + result.trace.joined(separator: "\n  "))
                }
                if result.divergence != nil {
                    mine.failures.append(ModelHarness.report(seed: seed, kva: kva, original: result,
                                                             scratch: scratch))
                    if mine.failures.count >= 3 { break }    // enough to act on
                }
                i += workers
            }
            let done = mine
            totals.withLock {
                $0.sequences += done.sequences
                $0.operations += done.operations
                $0.bytes += done.bytes
                $0.failures += done.failures
                $0.coverage += done.coverage
            }
        }
        let t = totals.get
        let seconds = Date().timeIntervalSince(start)
        print("model-based test: \(t.sequences) sequences, \(t.operations) operations, "
              + "\(t.bytes) bytes read and checked, \(t.failures.count) divergences, "
              + String(format: "%.1f s on %d threads", seconds, workers)
              + (tsan ? " (thread sanitizer: count cut)" : ""))
        print("model-based test coverage: " + t.coverage.summary)
        for failure in t.failures.prefix(5) {
            Issue.record(Comment(rawValue: failure))
        }
        #expect(t.sequences == sequences || !t.failures.isEmpty)
    }
}
