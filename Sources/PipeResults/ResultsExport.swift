import Foundation

extension ResultsTable {
    // MARK: JSON

    /// `{"schema": "pipebench-json/2", "columns": [...], "rows": [{column: value}, ...]}`, with
    /// integers, numbers and booleans typed and empty cells null. `parseJSON` reads it back
    /// to the same table.
    public func json() -> String {
        var out = "{\n  \"schema\": \(Self.jsonString(ResultsSchema.jsonVersion)),\n  \"columns\": ["
        out += columns.map(Self.jsonString).joined(separator: ", ") + "],\n  \"rows\": ["
        for (n, r) in rows.enumerated() {
            out += n == 0 ? "\n    {" : ",\n    {"
            var cells: [String] = []
            for (i, c) in ResultsSchema.columns.enumerated() {
                cells.append("\(Self.jsonString(c.name)): \(Self.jsonCell(r[i], c.type))")
            }
            out += cells.joined(separator: ", ") + "}"
        }
        out += rows.isEmpty ? "]\n}\n" : "\n  ]\n}\n"
        return out
    }

    static func jsonCell(_ text: String, _ type: ResultsSchema.ColumnType) -> String {
        if text.isEmpty { return "null" }
        switch type {
        case .integer: if Int(text) != nil { return text }
        case .number: if let d = Double(text), d.isFinite { return text }
        case .boolean: if text == "true" || text == "false" { return text }
        case .text: break
        }
        return jsonString(text)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    struct JSONFile: Decodable {
        let schema: String
        let columns: [String]
        let rows: [[String: Cell]]
        enum Cell: Decodable {
            case null, bool(Bool), int(Int), double(Double), string(String)
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if c.decodeNil() { self = .null }
                else if let b = try? c.decode(Bool.self) { self = .bool(b) }
                else if let i = try? c.decode(Int.self) { self = .int(i) }
                else if let d = try? c.decode(Double.self) { self = .double(d) }
                else { self = .string(try c.decode(String.self)) }
            }
        }
    }

    public static func parseJSON(_ text: String, name: String) throws -> ResultsTable {
        guard let file = try? JSONDecoder().decode(JSONFile.self, from: Data(text.utf8)) else {
            throw ResultsError(.input, "\(name) is not a pipebench results JSON (schema \(ResultsSchema.jsonVersion)); give a file written by pipebench")
        }
        guard let version = ResultsSchema.readableVersion(file.schema, json: true) else {
            throw ResultsError(.input, "\(name) has schema '\(file.schema)', this pipebench reads \(ResultsSchema.readableSchemas(json: true))")
        }
        // Older versions lack the columns later ones added; they read as empty.
        guard file.columns == ResultsSchema.columnNames(ofVersion: version) else {
            throw ResultsError(.input, "\(name): columns differ from \(ResultsSchema.jsonSchema(version)); give an unmodified pipebench JSON")
        }
        var rows: [[String]] = []
        for (n, object) in file.rows.enumerated() {
            var r = [String](repeating: "", count: ResultsSchema.columns.count)
            for (i, c) in ResultsSchema.columns.enumerated() {
                switch object[c.name] ?? .null {
                case .null: r[i] = ""
                case .bool(let b): r[i] = b ? "true" : "false"
                case .int(let v): r[i] = c.type == .number ? formatNumber(Double(v)) : String(v)
                case .double(let d): r[i] = c.type == .integer && d == d.rounded() ? String(Int(d)) : formatNumber(d)
                case .string(let s): r[i] = s
                }
            }
            guard r[0] == ResultsSchema.csvSchema(version) else {
                throw ResultsError(.input, "\(name): row \(n + 1) has schema '\(r[0])', the file's \(ResultsSchema.csvSchema(version))")
            }
            r[0] = ResultsSchema.csvVersion
            rows.append(r)
        }
        return ResultsTable(rows: rows)
    }

    // MARK: Markdown

    /// A summary: one line per configuration (median and 95% interval of its repetitions),
    /// the parameters that differ between configurations, then the environment.
    public func markdown(title: String? = nil) -> String {
        let groups = ResultsSummary.groups(self)
        var out = title.map { "## \($0)\n\n" } ?? ""
        if groups.isEmpty { return out + "(no rows)\n" }
        let varying = ResultsSchema.parameterColumns.filter { col in
            col != "workload" && col != "transport" && Set(groups.map { value($0.rows[0], col) }).count > 1
        }
        let metrics = ResultsSummary.metrics.filter { m in groups.contains { $0.median(m.column) != nil } }
        var header = ["configuration", "workload", "transport"] + varying + ["n"]
        header += metrics.map { "\($0.title) (median [95% CI])" }
        var lines = [header]
        for g in groups {
            let first = g.rows[0]
            var line = [g.label, value(first, "workload"), value(first, "transport")] + varying.map { value(first, $0) }
            line.append(String(g.rows.count))
            for m in metrics { line.append(g.summaryText(m.column, digits: m.digits) ?? "") }
            lines.append(line)
        }
        func row(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
        out += row(lines[0])
        out += "|" + lines[0].indices.map { $0 < 3 + varying.count ? "---|" : "---:|" }.joined() + "\n"
        for l in lines.dropFirst() { out += row(l) }
        out += "\n" + environmentMarkdown()
        return out
    }

    /// "Machine: …" lines from the first row's environment columns.
    public func environmentMarkdown() -> String {
        guard !rows.isEmpty else { return "" }
        let commits = Set(rows.indices.map { value($0, "env_git_commit") }).sorted()
        let hosts = Set(rows.indices.map { value($0, "env_hostname") }).sorted()
        var out = "Machine: \(value(0, "env_cpu_model")), \(value(0, "env_online_cpus")) CPUs, "
        out += "\(value(0, "env_numa_nodes")) NUMA node(s), \(value(0, "env_hypervisor") == "true" ? "VM" : "bare metal"), "
        out += "Linux \(value(0, "env_kernel")) \(value(0, "env_arch")), THP \(value(0, "env_thp")), clock \(value(0, "env_clocksource")).  \n"
        out += "Build: Swift \(value(0, "env_swift")) \(value(0, "env_build")), pipebench \(value(0, "env_version")), commit \(commits.joined(separator: ", "))"
        out += value(0, "env_git_dirty") == "true" ? " (with uncommitted changes)" : ""
        out += ".  \nHost: \(hosts.joined(separator: ", ")); runs: \(Set(rows.indices.map { value($0, "run_id") }).sorted().joined(separator: ", ")).\n"
        return out
    }
}
