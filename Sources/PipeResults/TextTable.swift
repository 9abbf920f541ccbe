/// Plain-text tables, as the CLI prints them.
public enum TextTable {
    /// Columns after the first are right-aligned.
    public static func render(_ rows: [[String]], indent: String = "  ", leftAligned: Set<Int> = [0]) -> String {
        guard let header = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: header.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        var out: [String] = []
        for (n, r) in rows.enumerated() {
            let cells = r.enumerated().map { i, c in
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                return leftAligned.contains(i) ? c + pad : pad + c
            }
            out.append(indent + cells.joined(separator: "  "))
            if n == 0 { out.append(indent + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        return out.joined(separator: "\n")
    }
}
