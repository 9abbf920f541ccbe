/// Parsing of the values a sweep is made of: sizes (`64`, `4K`, `1M`, `1G`, binary), lists
/// (`4K,8K,16K`), ranges (`4K..1M`: powers of two; `0..3`: consecutive integers), the
/// Cartesian product of several axes, and the split of that product into shards.

/// A mistake in what the user asked for: the message says what is wrong and what to do.
public struct SweepError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Durations on the command line: a decimal number and a unit, `ns`, `us` (or `µs`), `ms`,
/// `s` or `min`: `100ms`, `1.5s`, `20us`. A bare number is refused unless the caller gives
/// its unit (`--wait spin:20000`: nanoseconds); `0` needs none.
public enum DurationSpec {
    static let units: [(suffix: String, ns: Double)] = [
        ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("min", 60e9), ("s", 1e9),
    ]

    /// Nanoseconds, or nil when `text` is not a duration.
    public static func nanoseconds(_ text: String, bareUnitNs: Double? = nil) -> Int64? {
        let t = text.trimmingWhitespace().lowercased()
        var scale = bareUnitNs
        var number = t
        for u in units where t.hasSuffix(u.suffix) {
            number = String(t.dropLast(u.suffix.count))
            scale = u.ns
            break
        }
        guard let v = Double(number), v >= 0, v.isFinite else { return nil }
        if v == 0 { return 0 }
        guard let scale, v * scale < 9e18 else { return nil }
        return Int64((v * scale).rounded())
    }

    /// `100ms`, `2s`, `1.5s`, `20us`: the largest unit it is a whole number of, else ns.
    public static func format(_ ns: Int64) -> String {
        for (suffix, unit) in [("min", Int64(60_000_000_000)), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)]
        where ns >= unit && ns % unit == 0 { return "\(ns / unit)\(suffix)" }
        return "\(ns)ns"
    }
}

public enum SizeSpec {
    /// Parses a byte size: a decimal number optionally followed by K, M, G or T (binary:
    /// 1K = 1024), optionally followed by `iB` or `B`, in either case. `64`, `4K`, `4KiB`,
    /// `1m`, `2G`. Negative numbers, fractions and overflow are refused.
    public static func parse(_ text: String) throws -> Int {
        let t = text.trimmingWhitespace()
        var digits = Substring(t)
        var multiplier = 1
        var suffix = ""
        while let last = digits.last, !last.isNumber {
            suffix = String(last) + suffix
            digits = digits.dropLast()
        }
        switch suffix.uppercased() {
        case "", "B": multiplier = 1
        case "K", "KB", "KIB": multiplier = 1 << 10
        case "M", "MB", "MIB": multiplier = 1 << 20
        case "G", "GB", "GIB": multiplier = 1 << 30
        case "T", "TB", "TIB": multiplier = 1 << 40
        default:
            throw SweepError("malformed size '\(text)': use a whole number of bytes with an optional K, M or G suffix (binary), e.g. 64, 4K, 1M")
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else {
            throw SweepError("malformed size '\(text)': use a whole number of bytes with an optional K, M or G suffix (binary), e.g. 64, 4K, 1M")
        }
        let (value, overflow) = n.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw SweepError("size '\(text)' is too large") }
        return value
    }

    /// The shortest exact spelling: 4096 → "4K", 1536 → "1536", 1 << 20 → "1M".
    public static func format(_ bytes: Int) -> String {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return String(bytes)
    }
}

public enum ListSpec {
    /// Splits `a,b,c` (empty items are refused).
    public static func items(_ text: String, flag: String) throws -> [String] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        if parts.contains(where: \.isEmpty) {
            throw SweepError("\(flag) '\(text)': empty item in the list; separate values with single commas, e.g. 4K,8K,16K")
        }
        return parts
    }

    /// Expands size lists and ranges: `64,4K..1M` → 64, 4096, 8192, …, 1048576. A range
    /// `A..B` doubles from A while the value is at most B (A ≤ B, A > 0).
    public static func sizes(_ text: String, flag: String) throws -> [Int] {
        var out: [Int] = []
        for item in try items(text, flag: flag) {
            if let r = item.range(of: "..") {
                let lo = try sized(String(item[..<r.lowerBound]), flag)
                let hi = try sized(String(item[r.upperBound...]), flag)
                guard lo > 0, lo <= hi else {
                    throw SweepError("\(flag) range '\(item)': needs 0 < start <= end; a range doubles from start to end, e.g. 4K..1M")
                }
                var v = lo
                while v <= hi {
                    out.append(v)
                    let (next, overflow) = v.multipliedReportingOverflow(by: 2)
                    if overflow { break }
                    v = next
                }
            } else {
                out.append(try sized(item, flag))
            }
        }
        return unique(out)
    }

    /// Expands integer lists and ranges: `0,50,75,90`, `0..3` → 0, 1, 2, 3.
    public static func integers(_ text: String, flag: String) throws -> [Int] {
        var out: [Int] = []
        for item in try items(text, flag: flag) {
            if let r = item.range(of: "..") {
                let lo = try integer(String(item[..<r.lowerBound]), flag)
                let hi = try integer(String(item[r.upperBound...]), flag)
                guard lo <= hi, hi - lo < 1_000_000 else { throw SweepError("\(flag) range '\(item)': needs start <= end, e.g. 0..3") }
                out.append(contentsOf: lo...hi)
            } else {
                out.append(try integer(item, flag))
            }
        }
        return unique(out)
    }

    static func sized(_ s: String, _ flag: String) throws -> Int {
        do { return try SizeSpec.parse(s) } catch let e as SweepError { throw SweepError("\(flag): \(e.message)") }
    }

    static func integer(_ s: String, _ flag: String) throws -> Int {
        guard let v = Int(s.trimmingWhitespace()) else { throw SweepError("\(flag): '\(s)' is not a whole number") }
        return v
    }

    static func unique<T: Hashable>(_ xs: [T]) -> [T] {
        var seen = Set<T>()
        return xs.filter { seen.insert($0).inserted }
    }
}

/// Which part of a sweep this process runs: shard `index` of `count`, numbered from 1.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1 else { throw SweepError("--shard \(index)/\(count): the shard count must be at least 1") }
        guard index >= 1, index <= count else {
            throw SweepError("--shard \(index)/\(count): shards are numbered 1 to \(count), e.g. --shard 1/\(count)")
        }
        self.index = index
        self.count = count
    }

    /// Parses `I/N`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw SweepError("--shard '\(text)': write it as I/N, shard I of N numbered from 1, e.g. --shard 2/8")
        }
        try self.init(index: i, count: n)
    }

    public static let whole = try! Shard(index: 1, count: 1)

    /// Round robin: item k belongs to shard (k mod N) + 1, so that every shard gets a mix of
    /// the sweep (cheap and expensive points alike). The shards are disjoint and together
    /// cover every item, in the original order.
    public func select<T>(_ items: [T]) -> [T] {
        items.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }

    public var description: String { "\(index)/\(count)" }
}

/// The Cartesian product of named axes; the last axis varies fastest.
public enum SweepMatrix {
    public static func product(_ axes: [(name: String, values: [String])]) -> [[(name: String, value: String)]] {
        var points: [[(name: String, value: String)]] = [[]]
        for axis in axes {
            var next: [[(name: String, value: String)]] = []
            next.reserveCapacity(points.count * axis.values.count)
            for p in points {
                for v in axis.values { next.append(p + [(axis.name, v)]) }
            }
            points = next
        }
        return points
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
