import Foundation

/// The pipe traffic of a real command: every pipe it made, and every call on either end of
/// each — who made it, which end, the size asked and returned, when, and how long the caller
/// had been away from the pipe before it (its compute time). Recorded by `pipebench trace`
/// (``TraceRecorder``), replayed over any transport by the `replay` workload.
///
/// The file is NDJSON, one object a line, each with a `type`: first the `header` (the
/// schema, the command, the tools' versions, the machine), then the `pipe`s, then the
/// `call`s in the order they started, then an `end` record that counts them (a file without
/// it was cut short). The catalog article TraceFormat documents every field.
public struct PipeTrace: Sendable, Equatable {
    /// The schema and version a trace file's header names.
    public static let schema = "pipebench-trace/1"

    public var header: Header
    public var pipes: [Pipe]
    /// In start order (`startNs`), ties by pipe, process and end.
    public var calls: [Call]

    public init(header: Header, pipes: [Pipe], calls: [Call]) {
        self.header = header
        self.pipes = pipes
        self.calls = calls
    }

    public struct Header: Codable, Sendable, Equatable {
        public var schema: String
        /// The command as given, one argument an element (`["sh", "-c", "tar cf - src | gzip -1"]`).
        public var command: [String]
        /// UTC start of the recording, ISO 8601.
        public var recorded: String
        /// The command's exit status (128 + N when signal N ended it).
        public var exitStatus: Int32
        /// `strace -V`'s first line.
        public var tracer: String
        /// The programs the command ran (each `execve` that succeeded), with their packages.
        public var tools: [Tool]
        public var machine: Machine
        /// The pipebench that recorded it: version and commit.
        public var pipebench: String

        public init(command: [String], recorded: String, exitStatus: Int32, tracer: String,
                    tools: [Tool], machine: Machine, pipebench: String) {
            self.schema = PipeTrace.schema
            self.command = command
            self.recorded = recorded
            self.exitStatus = exitStatus
            self.tracer = tracer
            self.tools = tools
            self.machine = machine
            self.pipebench = pipebench
        }

        enum CodingKeys: String, CodingKey {
            case schema, command, recorded, tracer, tools, machine, pipebench
            case exitStatus = "exit_status"
        }
    }

    /// A program the command ran: its path, and (where the package manager knows it) its
    /// package and version.
    public struct Tool: Codable, Sendable, Equatable {
        public var path: String
        public var package: String?
        public var version: String?

        public init(path: String, package: String? = nil, version: String? = nil) {
            self.path = path
            self.package = package
            self.version = version
        }
    }

    public struct Machine: Codable, Sendable, Equatable {
        public var hostname: String
        public var kernel: String
        public var arch: String
        public var cpuModel: String?
        public var onlineCPUs: Int

        public init(hostname: String, kernel: String, arch: String, cpuModel: String?, onlineCPUs: Int) {
            self.hostname = hostname
            self.kernel = kernel
            self.arch = arch
            self.cpuModel = cpuModel
            self.onlineCPUs = onlineCPUs
        }

        enum CodingKeys: String, CodingKey {
            case hostname, kernel, arch
            case cpuModel = "cpu_model"
            case onlineCPUs = "online_cpus"
        }
    }

    /// One pipe the command made (`pipe` or `pipe2`).
    public struct Pipe: Codable, Sendable, Equatable {
        /// 0, 1, …: what the calls name.
        public var id: Int
        /// The kernel's inode of the pipe in the recording (`pipe:[N]`).
        public var inode: UInt64
        /// The process that made it.
        public var creator: Int32
        /// When, ns after the recording's first event.
        public var createdNs: Int64

        public init(id: Int, inode: UInt64, creator: Int32, createdNs: Int64) {
            self.id = id
            self.inode = inode
            self.creator = creator
            self.createdNs = createdNs
        }

        enum CodingKeys: String, CodingKey {
            case id, inode, creator
            case createdNs = "created_ns"
        }
    }

    public enum End: String, Codable, Sendable, CaseIterable {
        case read = "r"
        case write = "w"
    }

    /// One call on one end of a pipe, or a run of `count` identical ones in a row by the
    /// same process on the same end (same call, size asked, result): the run keeps the first
    /// call's start and the mean duration and gap.
    public struct Call: Codable, Sendable, Equatable {
        public var pipe: Int
        /// The process (thread) that made it.
        public var pid: Int32
        public var end: End
        /// `read`, `write`, `readv`, `writev`, `splice`, `vmsplice` or `sendfile`.
        public var call: String
        /// Bytes asked for (vectors: all their lengths together).
        public var asked: Int
        /// Bytes the call returned; -1 when it failed (`error`).
        public var returned: Int
        /// The errno name of a failed call (`EPIPE`, `EAGAIN`, `EINTR`).
        public var error: String?
        /// Start, ns after the recording's first event.
        public var startNs: Int64
        /// Time in the call, ns (mean over the run).
        public var durationNs: Int64
        /// Since the same process's previous call on this pipe ended, ns (mean over the run);
        /// nil for its first call on the pipe.
        public var gapNs: Int64?
        /// Identical calls in a row this record stands for (1: one call).
        public var count: Int

        public init(pipe: Int, pid: Int32, end: End, call: String, asked: Int, returned: Int,
                    error: String? = nil, startNs: Int64, durationNs: Int64, gapNs: Int64?, count: Int = 1) {
            self.pipe = pipe
            self.pid = pid
            self.end = end
            self.call = call
            self.asked = asked
            self.returned = returned
            self.error = error
            self.startNs = startNs
            self.durationNs = durationNs
            self.gapNs = gapNs
            self.count = count
        }

        enum CodingKeys: String, CodingKey {
            case pipe, pid, end, call, asked, error
            case returned = "ret"
            case startNs = "t_ns"
            case durationNs = "dur_ns"
            case gapNs = "gap_ns"
            case count = "n"
        }

        /// The bytes this record moved (all `count` calls).
        public var bytes: Int { max(returned, 0) * count }
    }

    /// The calls that the calls of `calls` stand for, runs counted.
    public var callCount: Int { calls.reduce(0) { $0 + $1.count } }

    /// From the first call's start to the last call's end, ns: the pipeline's own time on
    /// its pipes, as recorded.
    public var spanNs: Int64 {
        guard let first = calls.map(\.startNs).min() else { return 0 }
        let last = calls.map { $0.startNs + $0.durationNs * Int64($0.count) + ($0.gapNs ?? 0) * Int64($0.count - 1) }.max()!
        return max(last - first, 0)
    }

    /// Bytes written into pipe `id`, and read out of it.
    public func bytes(pipe id: Int, _ end: End) -> Int {
        calls.reduce(0) { $0 + ($1.pipe == id && $1.end == end ? $1.bytes : 0) }
    }
}

/// A trace file that cannot be used: unreadable, of another schema, malformed or cut short,
/// with the line it failed on.
public struct TraceError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The 1-based line of the trace file, when the problem is on one.
    public let line: Int?
    public let message: String

    public init(line: Int? = nil, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

// MARK: the file

extension PipeTrace {
    /// The NDJSON text of the trace, one record a line, `\n` line ends.
    public func ndjson() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func line<T: Encodable>(_ type: String, _ value: T) -> String {
            let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
            let object = String(decoding: data, as: UTF8.self)
            // {"type":"…", then the record's own fields.
            return "{\"type\":\"\(type)\"" + (object == "{}" ? "}" : "," + object.dropFirst()) + "\n"
        }
        var out = line("header", header)
        for p in pipes { out += line("pipe", p) }
        for c in calls { out += line("call", c) }
        out += line("end", EndRecord(pipes: pipes.count, calls: calls.count))
        return out
    }

    /// Writes the trace to `path` (replacing a file there).
    public func write(to path: String) throws {
        do { try Data(ndjson().utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TraceError("cannot write the trace to \(path): \(error.localizedDescription)")
        }
    }

    /// Reads a trace file; a problem is a ``TraceError`` naming the line.
    public static func read(from path: String) throws -> PipeTrace {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TraceError("cannot read the trace \(path): \(error.localizedDescription)")
        }
        return try parse(String(decoding: data, as: UTF8.self))
    }

    /// Parses the NDJSON text of a trace and checks it: the header first and of this schema,
    /// every record well formed, every call on a pipe declared before it, the `end` record
    /// last and counting what came before, no pipe read of more bytes than were written in.
    public static func parse(_ text: String) throws -> PipeTrace {
        let decoder = JSONDecoder()
        var header: Header?
        var pipes: [Pipe] = []
        var calls: [Call] = []
        var ended = false
        var lineNumber = 0
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for raw in lines {
            lineNumber += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty {
                // Only the newline that ends the last record may leave an empty piece.
                if lineNumber == lines.count { lineNumber -= 1; break }
                throw TraceError(line: lineNumber, "an empty line (each line of a trace is one JSON record)")
            }
            if ended { throw TraceError(line: lineNumber, "a record after the end record") }
            let data = Data(line.utf8)
            let type: String
            do { type = try decoder.decode(TypeField.self, from: data).type } catch {
                throw TraceError(line: lineNumber, "not a trace record (a JSON object with a \"type\"): \(Self.reason(error))")
            }
            func decode<T: Decodable>(_: T.Type) throws -> T {
                do { return try decoder.decode(T.self, from: data) } catch {
                    throw TraceError(line: lineNumber, "a malformed \(type) record: \(Self.reason(error))")
                }
            }
            if header == nil && type != "header" {
                throw TraceError(line: lineNumber, "the trace must begin with its header record, not a \(type) record")
            }
            switch type {
            case "header":
                guard header == nil else { throw TraceError(line: lineNumber, "a second header record") }
                let schema = (try? decoder.decode(SchemaField.self, from: data))?.schema
                guard schema == Self.schema else {
                    throw TraceError(line: lineNumber, "schema \(schema.map { "'\($0)'" } ?? "missing"): this pipebench reads \(Self.schema)")
                }
                header = try decode(Header.self)
            case "pipe":
                let p = try decode(Pipe.self)
                guard p.id == pipes.count else {
                    throw TraceError(line: lineNumber, "pipe \(p.id) out of order: pipes are numbered 0, 1, … in the file, the next is \(pipes.count)")
                }
                pipes.append(p)
            case "call":
                let c = try decode(Call.self)
                if let problem = Self.problem(c, pipes: pipes.count, after: calls.last) {
                    throw TraceError(line: lineNumber, problem)
                }
                calls.append(c)
            case "end":
                let e = try decode(EndRecord.self)
                guard e.pipes == pipes.count, e.calls == calls.count else {
                    throw TraceError(line: lineNumber, "the end record counts \(e.pipes) pipes and \(e.calls) calls, the file holds \(pipes.count) and \(calls.count)")
                }
                ended = true
            default:
                throw TraceError(line: lineNumber, "an unknown record type '\(type)' (header, pipe, call or end)")
            }
        }
        guard let header else { throw TraceError(line: 1, "an empty file: no header record") }
        guard ended else {
            throw TraceError(line: lineNumber, "the trace is cut short: it ends without its end record")
        }
        let trace = PipeTrace(header: header, pipes: pipes, calls: calls)
        for p in pipes {
            let written = trace.bytes(pipe: p.id, .write), read = trace.bytes(pipe: p.id, .read)
            if read > written {
                throw TraceError("pipe \(p.id): its reads return \(read) bytes, but only \(written) were written into it")
            }
        }
        return trace
    }

    /// What is wrong with call `c`, or nil.
    static func problem(_ c: Call, pipes: Int, after previous: Call?) -> String? {
        if c.pipe < 0 || c.pipe >= pipes { return "a call on pipe \(c.pipe), which no pipe record before it declares" }
        if !TraceCalls.all.contains(c.call) { return "an unknown call '\(c.call)' (\(TraceCalls.all.joined(separator: ", ")))" }
        if c.asked < 0 { return "a call asking for \(c.asked) bytes" }
        if c.returned < -1 || c.returned > c.asked { return "a call returning \(c.returned) of \(c.asked) bytes asked" }
        if (c.returned == -1) != (c.error != nil) { return c.error == nil ? "a call returning -1 without its error" : "a call with an error (\(c.error!)) that returned \(c.returned), not -1" }
        if c.count < 1 { return "a run of \(c.count) calls" }
        if c.durationNs < 0 || (c.gapNs ?? 0) < 0 { return "a negative duration or gap" }
        if let previous, c.startNs < previous.startNs { return "a call that starts before the one above it: calls are in start order" }
        return nil
    }

    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "\"\(key.stringValue)\" is missing"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "\"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case DecodingError.dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid JSON" : "\"\(c.codingPath.map(\.stringValue).joined(separator: "."))\": \(c.debugDescription)"
        default: return "\(error)"
        }
    }

    private struct TypeField: Decodable { var type: String }
    private struct SchemaField: Decodable { var schema: String }
    private struct EndRecord: Codable { var pipes: Int; var calls: Int }
}

/// The calls a trace keeps, by their system call names.
public enum TraceCalls {
    public static let all = ["read", "write", "readv", "writev", "splice", "vmsplice", "sendfile"]
}
