import Foundation

/// A value in a sweep config file.
public indirect enum ConfigValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case array([ConfigValue])

    /// The flag text this value stands for: arrays become comma lists, booleans on/off.
    public var flagText: String {
        switch self {
        case .string(let s): return s
        case .integer(let i): return String(i)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .bool(let b): return b ? "on" : "off"
        case .array(let xs): return xs.map(\.flagText).joined(separator: ",")
        }
    }
}

/// One `key = value` of a config file, with the table it appeared under.
public struct ConfigEntry: Equatable, Sendable {
    public var table: String?
    public var key: String
    public var value: ConfigValue
    public var line: Int
}

/// Sweep config files: JSON (an object of keys, optionally grouped in objects) or a subset of
/// TOML: `key = value` lines, `[table]` headers, `#` comments, values that are "basic" or
/// 'literal' strings, integers (with `_` separators), floats, booleans and arrays of those
/// (which may span lines). Keys are the command's flag names without `--` (`write-size`;
/// `write_size` is accepted too); tables `[workload]`, `[engine]`, `[placement]` and `[run]`
/// group them.
public enum SweepConfigFile {
    /// Run-level keys (not sweep axes) a file may set.
    public static let runKeys = ["repetitions", "warmup", "min-time", "precision", "max-repetitions", "max-time", "precision-rounds", "csv", "json", "label"]

    public static func load(path: String) throws -> [ConfigEntry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SweepError("cannot read config file '\(path)': check the path and its permissions")
        }
        let text = String(decoding: data, as: UTF8.self)
        let entries = path.lowercased().hasSuffix(".json") ? try parseJSON(text, name: path) : try parseTOML(text, name: path)
        try checkKeys(entries, name: path)
        return entries
    }

    /// Refuses keys that are not flags, and keys under a table they do not belong to.
    public static func checkKeys(_ entries: [ConfigEntry], name: String) throws {
        let tables = ["workload", "engine", "placement", "run"]
        for e in entries {
            let key = canonicalKey(e.key)
            if let t = e.table, !tables.contains(t) {
                throw SweepError("\(name):\(e.line): unknown table [\(t)]; use [workload], [engine], [placement] or [run]")
            }
            if let axis = SweepAxis(rawValue: key) {
                if let t = e.table, t != axis.group {
                    throw SweepError("\(name):\(e.line): key '\(e.key)' belongs under [\(axis.group)], not [\(t)]")
                }
            } else if runKeys.contains(key) {
                if let t = e.table, t != "run" {
                    throw SweepError("\(name):\(e.line): key '\(e.key)' belongs under [run] or at the top, not [\(t)]")
                }
            } else {
                throw SweepError("\(name):\(e.line): unknown key '\(e.key)'; known keys: \((SweepAxis.allCases.map(\.rawValue) + runKeys).joined(separator: ", "))")
            }
        }
    }

    public static func canonicalKey(_ key: String) -> String { key.replacingOccurrences(of: "_", with: "-") }

    // MARK: JSON

    public static func parseJSON(_ text: String, name: String) throws -> [ConfigEntry] {
        let top: [String: JSONConfigNode]
        do {
            top = try JSONDecoder().decode([String: JSONConfigNode].self, from: Data(text.utf8))
        } catch {
            throw SweepError("\(name): not a JSON object of flag names with string, number, boolean or array values (e.g. {\"write-size\": \"4K..1M\"}); fix the file")
        }
        var out: [ConfigEntry] = []
        for key in top.keys.sorted() {
            switch top[key]! {
            case .table(let table):
                for k in table.keys.sorted() {
                    guard case .value(let v) = table[k]! else {
                        throw SweepError("\(name): '\(key).\(k)': tables nest one level only")
                    }
                    out.append(ConfigEntry(table: key, key: k, value: v, line: 0))
                }
            case .value(let v):
                out.append(ConfigEntry(table: nil, key: key, value: v, line: 0))
            }
        }
        return out
    }

    // MARK: TOML subset

    public static func parseTOML(_ text: String, name: String) throws -> [ConfigEntry] {
        var parser = TOMLSubsetParser(Array(text.unicodeScalars), name: name)
        return try parser.parse()
    }
}

struct TOMLSubsetParser {
    let s: [Unicode.Scalar]
    let name: String
    var i = 0
    var line = 1

    init(_ s: [Unicode.Scalar], name: String) {
        self.s = s
        self.name = name
    }

    func fail(_ what: String) -> SweepError {
        SweepError("\(name):\(line): \(what) (supported TOML: key = value, [table], # comments, strings, numbers, booleans, arrays)")
    }

    var atEnd: Bool { i >= s.count }
    var peek: Unicode.Scalar? { atEnd ? nil : s[i] }

    mutating func skipSpaces() {
        while let c = peek, c == " " || c == "\t" { i += 1 }
    }

    /// Skips spaces, newlines and comments (inside arrays).
    mutating func skipBlank() {
        while let c = peek {
            if c == " " || c == "\t" || c == "\r" { i += 1 }
            else if c == "\n" { i += 1; line += 1 }
            else if c == "#" { while let d = peek, d != "\n" { i += 1 } }
            else { break }
        }
    }

    /// After a value or header: only spaces and an optional comment until the end of line.
    mutating func endOfLine() throws {
        skipSpaces()
        if peek == "#" { while let d = peek, d != "\n" { i += 1 } }
        if peek == "\r" { i += 1 }
        if let c = peek {
            guard c == "\n" else { throw fail("unexpected '\(c)' after the value") }
            i += 1
            line += 1
        }
    }

    static func isBareKey(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
    }

    mutating func key() throws -> String {
        if peek == "\"" || peek == "'" {
            guard case .string(let k) = try value() else { throw fail("bad key") }
            return k
        }
        var k = ""
        while let c = peek, Self.isBareKey(c) { k.unicodeScalars.append(c); i += 1 }
        guard !k.isEmpty else { throw fail("expected a key") }
        return k
    }

    mutating func parse() throws -> [ConfigEntry] {
        var out: [ConfigEntry] = []
        var table: String?
        var seen = Set<String>()
        while true {
            skipBlank()
            guard let c = peek else { break }
            if c == "[" {
                i += 1
                skipSpaces()
                if peek == "[" { throw fail("arrays of tables ([[...]]) are not supported") }
                let t = try key()
                skipSpaces()
                if peek == "." { throw fail("dotted table names are not supported") }
                guard peek == "]" else { throw fail("expected ']' to close the table header") }
                i += 1
                table = t
                try endOfLine()
                continue
            }
            let startLine = line
            let k = try key()
            skipSpaces()
            if peek == "." { throw fail("dotted keys are not supported; use a [table]") }
            guard peek == "=" else { throw fail("expected '=' after key '\(k)'") }
            i += 1
            skipSpaces()
            let v = try value()
            let full = (table.map { $0 + "." } ?? "") + k
            guard seen.insert(full).inserted else { throw fail("key '\(k)' is set twice") }
            out.append(ConfigEntry(table: table, key: k, value: v, line: startLine))
            try endOfLine()
        }
        return out
    }

    mutating func value() throws -> ConfigValue {
        guard let c = peek else { throw fail("expected a value") }
        switch c {
        case "\"":
            if i + 2 < s.count && s[i + 1] == "\"" && s[i + 2] == "\"" { throw fail("multi-line strings are not supported") }
            i += 1
            var out = ""
            while true {
                guard let d = peek, d != "\n" else { throw fail("unterminated string") }
                i += 1
                if d == "\"" { break }
                if d == "\\" {
                    guard let e = peek else { throw fail("unterminated string") }
                    i += 1
                    switch e {
                    case "\"": out += "\""
                    case "\\": out += "\\"
                    case "n": out += "\n"
                    case "t": out += "\t"
                    case "r": out += "\r"
                    default: throw fail("unsupported escape '\\\(e)'")
                    }
                } else {
                    out.unicodeScalars.append(d)
                }
            }
            return .string(out)
        case "'":
            i += 1
            var out = ""
            while true {
                guard let d = peek, d != "\n" else { throw fail("unterminated string") }
                i += 1
                if d == "'" { break }
                out.unicodeScalars.append(d)
            }
            return .string(out)
        case "[":
            i += 1
            var items: [ConfigValue] = []
            while true {
                skipBlank()
                if peek == "]" { i += 1; break }
                items.append(try value())
                skipBlank()
                if peek == "," { i += 1; continue }
                if peek == "]" { i += 1; break }
                throw fail("expected ',' or ']' in the array")
            }
            return .array(items)
        case "{":
            throw fail("inline tables are not supported; use a [table]")
        default:
            var word = ""
            while let d = peek, !(d == " " || d == "\t" || d == "\n" || d == "\r" || d == "," || d == "]" || d == "#") {
                word.unicodeScalars.append(d)
                i += 1
            }
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            let digits = word.replacingOccurrences(of: "_", with: "")
            if let n = Int(digits) { return .integer(n) }
            if let d = Double(digits), d.isFinite { return .number(d) }
            throw fail("cannot read value '\(word)'; quote sizes and lists, e.g. write-size = \"4K..1M\"")
        }
    }
}

/// A JSON config value: a plain value or a table of them.
enum JSONConfigNode: Decodable {
    case value(ConfigValue)
    case table([String: JSONConfigNode])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let t = try? c.decode([String: JSONConfigNode].self) { self = .table(t); return }
        self = .value(try Self.plain(c))
    }

    static func plain(_ c: SingleValueDecodingContainer) throws -> ConfigValue {
        if let b = try? c.decode(Bool.self) { return .bool(b) }
        if let i = try? c.decode(Int.self) { return .integer(i) }
        if let d = try? c.decode(Double.self) { return .number(d) }
        if let s = try? c.decode(String.self) { return .string(s) }
        if let a = try? c.decode([JSONPlain].self) { return .array(a.map(\.value)) }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "unsupported value")
    }
}

struct JSONPlain: Decodable {
    let value: ConfigValue
    init(from decoder: Decoder) throws { value = try JSONConfigNode.plain(try decoder.singleValueContainer()) }
}
