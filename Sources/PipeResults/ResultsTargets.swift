import Foundation

/// Targets a report sets for ratios between two configurations of one run, and their check
/// against saved results: `pipebench export FILE... --to targets --targets TARGETS.json`.
///
/// A targets file is JSON (`pipebench-targets/1`):
///
/// ```json
/// {
///   "schema": "pipebench-targets/1",
///   "targets": [
///     { "name": "stream 1 MiB, direct path vs linux-pipe",
///       "metric": "throughput_GBps", "at_least": 3,
///       "measured": { "workload": "stream", "transport": "engine", "write_size_B": "1048576" },
///       "against": { "workload": "stream", "transport": "linux-pipe", "write_size_B": "1048576" },
///       "accepted_bound": null }
///   ]
/// }
/// ```
///
/// `metric` is a CSV column; `at_least` or `at_most` (exactly one) bounds the ratio
/// measured / against. `measured` and `against` each select one configuration of a run by
/// exact CSV values (`""` selects an empty cell: "does not apply"). `accepted_bound`, when
/// not null, says why a target that is not met is accepted on the machine the report was made
/// on. The ratio is the one the run summary uses (`ResultsSummary.pairedRatio`): the median
/// of the per-round ratios, with its distribution-free interval, and a target is met when
/// that median is on the right side of it.
public struct ResultsTargets: Codable, Sendable, Equatable {
    public static let schemaVersion = "pipebench-targets/1"

    public var schema: String
    public var targets: [Target]

    public struct Target: Codable, Sendable, Equatable {
        public var name: String
        public var metric: String
        public var atLeast: Double?
        public var atMost: Double?
        public var measured: [String: String]
        public var against: [String: String]
        public var acceptedBound: String?

        enum CodingKeys: String, CodingKey {
            case name, metric, measured, against
            case atLeast = "at_least", atMost = "at_most", acceptedBound = "accepted_bound"
        }

        public init(name: String, metric: String, atLeast: Double? = nil, atMost: Double? = nil,
                    measured: [String: String], against: [String: String], acceptedBound: String? = nil) {
            self.name = name
            self.metric = metric
            self.atLeast = atLeast
            self.atMost = atMost
            self.measured = measured
            self.against = against
            self.acceptedBound = acceptedBound
        }

        /// "≥ 3×", "≤ 0.025×".
        public var boundText: String {
            if let atLeast { return ">= " + Self.number(atLeast) + "x" }
            return "<= " + Self.number(atMost ?? 0) + "x"
        }

        /// Whether `ratio` meets the target.
        public func isMet(by ratio: Double) -> Bool {
            if let atLeast { return ratio >= atLeast }
            return ratio <= (atMost ?? .infinity)
        }

        static func number(_ x: Double) -> String {
            x == x.rounded() ? String(Int(x)) : String(format: "%g", x)
        }
    }

    public init(targets: [Target]) {
        self.schema = Self.schemaVersion
        self.targets = targets
    }

    /// Reads and checks a targets file; the error names the file and what to change.
    public static func read(path: String) throws -> ResultsTargets {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ResultsError(.input, "cannot read '\(path)': check the path and its permissions")
        }
        return try parse(data, name: path)
    }

    public static func parse(_ data: Data, name: String) throws -> ResultsTargets {
        let file: ResultsTargets
        do {
            file = try JSONDecoder().decode(ResultsTargets.self, from: data)
        } catch {
            throw ResultsError(.input, "\(name): not a targets file (\(Self.describe(error)))")
        }
        guard file.schema == schemaVersion else {
            throw ResultsError(.input, "\(name): schema \"\(file.schema)\", expected \"\(schemaVersion)\"")
        }
        for (i, t) in file.targets.enumerated() {
            let at = "\(name): target \(i + 1) (\(t.name))"
            guard (t.atLeast == nil) != (t.atMost == nil) else {
                throw ResultsError(.input, "\(at): give exactly one of at_least and at_most")
            }
            guard let column = ResultsSchema.column(t.metric), column.type == .number || column.type == .integer else {
                throw ResultsError(.input, "\(at): metric \"\(t.metric)\" is not a numeric column (see `pipebench columns`)")
            }
            for key in t.measured.keys.sorted() + t.against.keys.sorted() where ResultsSchema.column(key) == nil {
                throw ResultsError(.input, "\(at): no column \"\(key)\" (see `pipebench columns`)")
            }
            guard !t.measured.isEmpty, !t.against.isEmpty else {
                throw ResultsError(.input, "\(at): measured and against must each name at least one column")
            }
        }
        return file
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing \"\(key.stringValue)\"" + path(context.codingPath)
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return context.debugDescription + path(context.codingPath)
        case DecodingError.dataCorrupted(let context):
            return context.debugDescription
        default:
            return "\(error)"
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.isEmpty ? "" : " at " + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// One target checked in one results table.
    public struct Outcome: Sendable, Equatable {
        public enum Status: Sendable, Equatable {
            /// The paired ratio, and whether its median meets the target.
            case measured(PairedRatio, met: Bool)
            /// The table holds no configuration that `measured` or `against` selects.
            case absent
            /// Why no ratio: several configurations selected, or rounds that do not pair.
            case unusable(String)
        }
        public let target: Target
        public let status: Status
    }

    /// Checks every target in `table`, which should hold one run (ratios pair its rounds).
    public func check(_ table: ResultsTable) -> [Outcome] {
        let groups = ResultsSummary.groups(table)
        func selected(_ selection: [String: String]) -> [ResultsSummary.Group] {
            groups.filter { g in selection.allSatisfy { table.value(g.rows[0], $0.key) == $0.value } }
        }
        return targets.map { t in
            let measured = selected(t.measured), against = selected(t.against)
            if measured.isEmpty || against.isEmpty { return Outcome(target: t, status: .absent) }
            for (side, found) in [("measured", measured), ("against", against)] where found.count > 1 {
                let labels = found.map(\.label).joined(separator: ", ")
                return Outcome(target: t, status: .unusable("\(side) selects \(found.count) configurations (\(labels)): name more columns"))
            }
            guard let ratio = ResultsSummary.pairedRatio(measured[0], over: against[0], t.metric) else {
                return Outcome(target: t, status: .unusable("the two configurations have no common rounds with \(t.metric)"))
            }
            return Outcome(target: t, status: .measured(ratio, met: t.isMet(by: ratio.estimate)))
        }
    }

    /// The text `--to targets` prints: per file, one line per target it holds, then the
    /// targets no file held and the accepted bounds.
    public func report(_ files: [(name: String, table: ResultsTable)]) -> String {
        var out: [String] = []
        var seen = Set<Int>()
        var boundsNotMet: [Int] = []
        for file in files {
            let outcomes = check(file.table)
            let present = outcomes.enumerated().filter { $0.element.status != .absent }
            guard !present.isEmpty else { continue }
            var rows = [["target", "ratio", "interval", "rounds", "goal", "verdict"]]
            for (i, o) in present {
                seen.insert(i)
                switch o.status {
                case .measured(let r, let met):
                    let interval = String(format: "[%.3f, %.3f] %.1f%%", r.lower, r.upper, 100 * r.coverage)
                    var verdict = met ? "met" : "NOT MET"
                    if !met, o.target.acceptedBound != nil {
                        verdict += " (accepted bound)"
                        if !boundsNotMet.contains(i) { boundsNotMet.append(i) }
                    }
                    rows.append([o.target.name, String(format: "%.3fx", r.estimate), interval, "\(r.pairs)",
                                 o.target.boundText, verdict])
                case .unusable(let why):
                    rows.append([o.target.name, "-", "", "", o.target.boundText, "no verdict: " + why])
                case .absent:
                    break
                }
            }
            out.append(file.name)
            out.append(TextTable.render(rows, leftAligned: [0, 2, 5]))
        }
        let missing = targets.indices.filter { !seen.contains($0) }
        if !missing.isEmpty {
            out.append("Not measured in these files: " + missing.map { targets[$0].name }.joined(separator: "; "))
        }
        if !boundsNotMet.isEmpty {
            out.append("Accepted bounds:")
            for i in boundsNotMet { out.append("  \(targets[i].name): \(targets[i].acceptedBound!)") }
        }
        if out.isEmpty { out.append("No target is measured in these files.") }
        return out.joined(separator: "\n") + "\n"
    }
}
