/// Reads what `strace` wrote about a command into the pipe calls of a ``PipeTrace``.
///
/// The recorder runs strace with one output file per process (`-ff -o PREFIX`: a line is
/// never split by another process's call), start times and durations in ns (`-ttt -T` at
/// nanosecond precision),
/// every descriptor annotated with what it is (`-y`: `3<pipe:[46835]>`), strings cut to one
/// byte, non-ASCII in hex (`-s 1 -x`: hardly any data; a quote inside one is escaped) and
/// whole arrays (`-v`: every `iov_len` of a `writev`). (`-xx` would hex the annotations too.) A descriptor names its pipe by inode, so a pipe is followed
/// wherever `fork`, `exec`, `dup2` or `SCM_RIGHTS` take it, without replaying them. Only
/// pipes made by the command itself (`pipe`, `pipe2`) are kept; one it was given (its own
/// standard output a pipe, say) is not its traffic.
///
/// An end is known by the call: `read` and `readv` read, `write` and `writev` write,
/// `splice` reads its input and writes its output where each is a pipe, `sendfile` writes
/// its output, and `vmsplice` is taken as a write (its use: mapping a buffer into a pipe; on
/// a read end it copies out, which strace does not tell apart). A call that strace saw begin
/// but not end (`<unfinished ...>`, `= ?`: its process was killed in it) is left out.
public enum StraceLog {
    /// strace's arguments before the command: the options the parser expects.
    public static func options(outputPrefix: String) -> [String] {
        ["-f", "-ff", "-o", outputPrefix, "--absolute-timestamps=format:unix,precision:ns",
         "--syscall-times=ns", "-y", "-v", "-s", "1", "-x", "-qq",
         "-e", "signal=none",
         "-e", "trace=pipe,pipe2,execve," + TraceCalls.all.joined(separator: ",")]
    }

    /// One line strace wrote, taken apart.
    struct Line: Equatable {
        var startNs: Int64
        var name: String
        var arguments: [Substring]
        /// The result before any errno: `12`, `-1`, `0`.
        var result: Int
        var error: String?
        var durationNs: Int64
    }

    /// A pipe call before the trace numbers pipes and gaps.
    struct RawCall {
        var inode: UInt64
        var pid: Int32
        var end: PipeTrace.End
        var call: String
        var asked: Int
        var returned: Int
        var error: String?
        var startNs: Int64
        var durationNs: Int64
    }

    /// What the files of one recording hold.
    public struct Parsed: Sendable {
        public var pipes: [PipeTrace.Pipe] = []
        public var calls: [PipeTrace.Call] = []
        /// The programs run (successful `execve`s), in the order first run.
        public var executables: [String] = []
    }

    /// Parses the per-process files (`contents[pid]` is the text of `PREFIX.pid`). With
    /// `mergeRuns`, identical calls in a row by one process on one end become one record.
    public static func parse(_ contents: [Int32: String], mergeRuns: Bool = true) -> Parsed {
        var created: [(inode: UInt64, pid: Int32, startNs: Int64)] = []
        var raw: [RawCall] = []
        var execs: [(Int64, String)] = []
        for (pid, text) in contents {
            for lineText in text.split(separator: "\n") {
                guard let line = parseLine(lineText) else { continue }
                switch line.name {
                case "pipe", "pipe2":
                    guard line.result == 0, let first = line.arguments.first else { continue }
                    if let inode = pipeInodes(first).first { created.append((inode, pid, line.startNs)) }
                case "execve":
                    if line.result == 0, let path = line.arguments.first.flatMap(decodeString) { execs.append((line.startNs, path)) }
                default:
                    raw += calls(line, pid: pid)
                }
            }
        }
        created.sort { ($0.startNs, $0.inode) < ($1.startNs, $1.inode) }
        var ids: [UInt64: Int] = [:]
        var parsed = Parsed()
        let origin = (created.map(\.startNs) + raw.map(\.startNs) + execs.map(\.0)).min() ?? 0
        for c in created where ids[c.inode] == nil {
            ids[c.inode] = parsed.pipes.count
            parsed.pipes.append(PipeTrace.Pipe(id: parsed.pipes.count, inode: c.inode, creator: c.pid, createdNs: c.startNs - origin))
        }
        for (_, path) in execs.sorted(by: { $0.0 < $1.0 }) where !parsed.executables.contains(path) {
            parsed.executables.append(path)
        }
        // Per process and end of each pipe, in start order: gaps, then runs.
        struct Stream: Hashable { var inode: UInt64; var pid: Int32; var end: PipeTrace.End }
        var streams: [Stream: [RawCall]] = [:]
        for c in raw where ids[c.inode] != nil { streams[Stream(inode: c.inode, pid: c.pid, end: c.end), default: []].append(c) }
        var calls: [PipeTrace.Call] = []
        for (_, stream) in streams {
            var lastEnd: Int64?
            // A run: its record, and the sums its means come from.
            var runs: [(record: PipeTrace.Call, duration: Int64, gap: Int64)] = []
            for c in stream.sorted(by: { $0.startNs < $1.startNs }) {
                let gap = lastEnd.map { max(c.startNs - $0, 0) }
                lastEnd = c.startNs + c.durationNs
                // Only calls that each have a gap join a run, so that its mean gap precedes every one.
                if mergeRuns, let gap, var last = runs.last, last.record.gapNs != nil, last.record.call == c.call,
                   last.record.asked == c.asked, last.record.returned == c.returned, last.record.error == c.error {
                    last.record.count += 1
                    last.duration += c.durationNs
                    last.gap += gap
                    last.record.durationNs = last.duration / Int64(last.record.count)
                    last.record.gapNs = last.gap / Int64(last.record.count)
                    runs[runs.count - 1] = last
                    continue
                }
                runs.append((PipeTrace.Call(
                    pipe: ids[c.inode]!, pid: c.pid, end: c.end, call: c.call, asked: c.asked, returned: c.returned,
                    error: c.error, startNs: c.startNs - origin, durationNs: c.durationNs, gapNs: gap),
                    c.durationNs, gap ?? 0))
            }
            calls += runs.map(\.record)
        }
        parsed.calls = calls.sorted { ($0.startNs, $0.pipe, $0.pid, $0.end.rawValue) < ($1.startNs, $1.pipe, $1.pid, $1.end.rawValue) }
        return parsed
    }

    /// The pipe calls one line stands for (none for a call on no pipe of interest).
    static func calls(_ line: Line, pid: Int32) -> [RawCall] {
        func make(_ fd: Substring, _ end: PipeTrace.End, asked: Int?) -> RawCall? {
            guard let inode = pipeInodes(fd).first, let asked else { return nil }
            // A vector's asked length can be below what returned only if strace cut it.
            return RawCall(inode: inode, pid: pid, end: end, call: line.name, asked: max(asked, line.result),
                           returned: line.result, error: line.error, startNs: line.startNs, durationNs: line.durationNs)
        }
        let a = line.arguments
        switch line.name {
        case "read", "write":
            guard a.count >= 3 else { return [] }
            return [make(a[0], line.name == "read" ? .read : .write, asked: Int(a[2]))].compactMap { $0 }
        case "readv", "writev", "vmsplice":
            guard a.count >= 2 else { return [] }
            return [make(a[0], line.name == "readv" ? .read : .write, asked: vectorLength(a[1]))].compactMap { $0 }
        case "splice":
            // splice(fd_in, off_in, fd_out, off_out, len, flags)
            guard a.count >= 5, let len = Int(a[4]) else { return [] }
            return [make(a[0], .read, asked: len), make(a[2], .write, asked: len)].compactMap { $0 }
        case "sendfile":
            // sendfile(out_fd, in_fd, offset, count)
            guard a.count >= 4 else { return [] }
            return [make(a[0], .write, asked: Int(a[3]))].compactMap { $0 }
        default:
            return []
        }
    }

    /// `1796413986.528644 read(0<pipe:[46835]>, ""..., 131072) = 12 <0.000015>`, taken apart;
    /// nil for anything else (an unfinished call, an exit notice).
    static func parseLine(_ text: Substring) -> Line? {
        guard let space = text.firstIndex(of: " ") else { return nil }
        guard let start = seconds(text[..<space]) else { return nil }
        let rest = text[text.index(after: space)...]
        guard let open = rest.firstIndex(of: "("), rest[..<open].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        let name = String(rest[..<open])
        // The duration closes the line; the result is after the last ") = " before it.
        guard rest.hasSuffix(">"), let lt = rest.lastIndex(of: "<"),
              let duration = seconds(rest[rest.index(after: lt)..<rest.index(before: rest.endIndex)]) else { return nil }
        let body = rest[rest.index(after: open)..<lt]
        guard let close = closingParenthesis(body) else { return nil }
        let arguments = splitArguments(body[..<close])
        let after = body[body.index(after: close)...].drop(while: { $0 == " " })
        guard after.hasPrefix("=") else { return nil }
        let fields = after.dropFirst().split(separator: " ", maxSplits: 2)
        guard let first = fields.first else { return nil }
        // `0<pipe:[1]>` (dup2 returns a descriptor), `12`, `-1`.
        guard let result = Int(first.prefix { $0 == "-" || $0.isNumber }), !first.hasPrefix("?") else { return nil }
        let error = result == -1 && fields.count > 1 ? String(fields[1]) : nil
        return Line(startNs: start, name: name, arguments: arguments, result: result, error: error, durationNs: duration)
    }

    /// `1796413986.528644` as ns.
    static func seconds(_ text: Substring) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let s = Int64(parts[0]), parts[1].count <= 9, let f = Int64(parts[1]) else { return nil }
        var frac = f
        for _ in parts[1].count..<9 { frac *= 10 }
        return s * 1_000_000_000 + frac
    }

    /// The index of the parenthesis that closes the argument list (depth 0, outside strings).
    static func closingParenthesis(_ body: Substring) -> Substring.Index? {
        var depth = 0
        var inString = false
        var escaped = false
        for i in body.indices {
            let ch = body[i]
            if inString {
                if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { inString = false }
                continue
            }
            switch ch {
            case "\"": inString = true
            case "(", "[", "{": depth += 1
            case ")", "]", "}":
                if depth == 0 && ch == ")" { return i }
                depth -= 1
            default: break
            }
        }
        return nil
    }

    /// The top-level arguments, split at commas outside strings, brackets and descriptor
    /// annotations (`<pipe:[1]>`, `</tmp/a,b>`).
    static func splitArguments(_ text: Substring) -> [Substring] {
        var out: [Substring] = []
        var depth = 0
        var inString = false, escaped = false, inAnnotation = false
        var start = text.startIndex
        var previous: Character = " "
        for i in text.indices {
            let ch = text[i]
            defer { previous = ch }
            if inString {
                if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { inString = false }
                continue
            }
            if inAnnotation {
                if ch == ">" { inAnnotation = false }
                continue
            }
            switch ch {
            case "\"": inString = true
            case "<" where previous.isNumber: inAnnotation = true
            case "(", "[", "{": depth += 1
            case ")", "]", "}": depth -= 1
            case "," where depth == 0:
                out.append(trimmed(text[start..<i]))
                start = text.index(after: i)
            default: break
            }
        }
        let last = trimmed(text[start...])
        if !last.isEmpty || !out.isEmpty { out.append(last) }
        return out
    }

    private static func trimmed(_ s: Substring) -> Substring {
        guard let first = s.firstIndex(where: { $0 != " " }), let last = s.lastIndex(where: { $0 != " " }) else {
            return s[s.endIndex...]
        }
        return s[first...last]
    }

    /// The inodes of the pipes named in `text` (`3<pipe:[46835]>`, or the array of pipe2).
    static func pipeInodes(_ text: Substring) -> [UInt64] {
        var out: [UInt64] = []
        var rest = text
        while let r = rest.range(of: "<pipe:[") {
            let digits = rest[r.upperBound...].prefix { $0.isNumber }
            if let n = UInt64(digits) { out.append(n) }
            rest = rest[r.upperBound...]
        }
        return out
    }

    /// The sum of the `iov_len`s of a vector argument; nil when strace left some out.
    static func vectorLength(_ text: Substring) -> Int? {
        if text.hasSuffix("...]") || text.hasSuffix("...") { return nil }
        var total = 0
        var rest = text
        while let r = rest.range(of: "iov_len=") {
            let digits = rest[r.upperBound...].prefix { $0.isNumber }
            guard let n = Int(digits) else { return nil }
            total += n
            rest = rest[r.upperBound...]
        }
        return total
    }

    /// A string argument as strace printed it (`"\x2f\x75"`, or plain with the usual C escapes), decoded.
    static func decodeString(_ text: Substring) -> String? {
        guard text.hasPrefix("\""), let close = text.dropFirst().lastIndex(of: "\"") else { return nil }
        let inner = text[text.index(after: text.startIndex)..<close]
        var bytes: [UInt8] = []
        var i = inner.startIndex
        while i < inner.endIndex {
            let ch = inner[i]
            if ch == "\\", inner.index(after: i) < inner.endIndex {
                let next = inner[inner.index(after: i)]
                if next == "x" {
                    let hexStart = inner.index(i, offsetBy: 2, limitedBy: inner.endIndex) ?? inner.endIndex
                    let hexEnd = inner.index(hexStart, offsetBy: 2, limitedBy: inner.endIndex) ?? inner.endIndex
                    guard let b = UInt8(inner[hexStart..<hexEnd], radix: 16) else { return nil }
                    bytes.append(b)
                    i = hexEnd
                    continue
                }
                let map: [Character: UInt8] = ["n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, "\"": 34]
                guard let b = map[next] else { return nil }
                bytes.append(b)
                i = inner.index(i, offsetBy: 2)
                continue
            }
            bytes += Array(String(ch).utf8)
            i = inner.index(after: i)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
