import Raft

/// A node's settings, and the one table they are read and written through: a scenario's
/// `set KEY VALUE` (SPEC section 2), raft-node's flags, and the core's `Settings`.
public struct NodeSettings: Sendable, Hashable {
    public var electionTimeoutMs = 150
    public var heartbeatMs = 50
    public var snapshotThreshold = 1000
    public var snapshotAmortizeFrom = 1 << 20
    public var snapshotTrailing = 200
    public var snapshotChunk = 64 << 10
    public var maxEntriesPerRequest = 200
    /// A client request not done in this many milliseconds is answered `timeout`.
    public var requestTimeoutMs = 10_000

    public init() {}

    /// How a value is written.
    public enum Unit: String, Sendable {
        /// `150ms`, `2s`, `1m`; milliseconds inside, more than 0.
        case duration
        /// `100`, `64KiB`, `1MiB`; bytes inside.
        case size
        /// A whole number, 0 or more.
        case count
    }

    /// One setting: its scenario key (nil when scenarios cannot set it), its raft-node flag,
    /// its unit, and the field it is.
    public struct Row: Sendable {
        public var key: String?
        public var flag: String
        public var unit: Unit
        public var help: String
        public var field: WritableKeyPath<NodeSettings, Int> & Sendable
        /// The largest value allowed, if any.
        public var maximum: Int?
        /// The smallest value allowed.
        public var minimum: Int
    }

    public static let table: [Row] = [
        Row(key: "election-timeout", flag: "election-timeout", unit: .duration, help: "Election timeout, randomised up to twice this.", field: \.electionTimeoutMs, minimum: 1),
        Row(key: "heartbeat", flag: "heartbeat", unit: .duration, help: "Heartbeat interval.", field: \.heartbeatMs, minimum: 1),
        Row(key: "snapshot-threshold", flag: "snapshot-threshold", unit: .count, help: "Applied entries since the last snapshot that trigger a new one (0: never).", field: \.snapshotThreshold, minimum: 0),
        Row(key: "snapshot-amortize-from", flag: "snapshot-amortize-from", unit: .size, help: "Once the newest snapshot holds this many bytes of state, a new one also waits until the entries applied since hold as many bytes (0: never waits).", field: \.snapshotAmortizeFrom, minimum: 0),
        Row(key: "snapshot-trailing", flag: "snapshot-trailing", unit: .count, help: "Entries kept in the log before a new snapshot's index.", field: \.snapshotTrailing, minimum: 0),
        Row(key: "snapshot-chunk", flag: "snapshot-chunk", unit: .size, help: "Bytes of a snapshot chunk sent to a follower (e.g. 65536 or 64KiB).", field: \.snapshotChunk, maximum: 16 << 20, minimum: 1),
        Row(key: "max-entries-per-request", flag: "max-entries-per-request", unit: .count, help: "Entries in one AppendEntries.", field: \.maxEntriesPerRequest, minimum: 1),
        Row(key: nil, flag: "request-timeout", unit: .duration, help: "A client request not done by then is answered timeout.", field: \.requestTimeoutMs, minimum: 1),
    ]

    public static func row(key: String) -> Row? { table.first { $0.key == key } }
    public static func row(flag: String) -> Row? { table.first { $0.flag == flag } }

    /// The value as written in a scenario or on a command line, or why it is not one.
    public static func parse(_ text: String, as row: Row) -> Result<Int, SettingError> {
        parse(text, unit: row.unit, name: row.flag, range: row.minimum...(row.maximum ?? .max))
    }

    /// A value of `unit` within `range` (`name` for the error).
    public static func parse(_ text: String, unit: Unit, name: String, range: ClosedRange<Int>) -> Result<Int, SettingError> {
        let value: Int?
        switch unit {
        case .duration: value = parseDuration(text)
        case .size: value = parseSize(text)
        case .count: value = Int(text).flatMap { $0 >= 0 ? $0 : nil }
        }
        guard let value else {
            let like = switch unit {
            case .duration: "a duration like 150ms, 2s or 1m"
            case .size: "a size like 100, 64KiB or 1MiB"
            case .count: "a whole number"
            }
            return .failure(SettingError(message: "'\(text)' is not \(like)"))
        }
        guard range.contains(value) else {
            let top = range.upperBound == .max ? "" : String(range.upperBound)
            return .failure(SettingError(message: "'\(text)' is out of range for \(name) (\(range.lowerBound)...\(top)\(unit == .duration ? " ms" : ""))"))
        }
        return .success(value)
    }

    /// Sets the row's field from text.
    public mutating func set(_ row: Row, _ text: String) throws(SettingError) {
        self[keyPath: row.field] = try Self.parse(text, as: row).get()
    }

    /// What a raft-node started with these settings is given: `--FLAG VALUE` for each row.
    public var arguments: [String] {
        Self.table.flatMap { row -> [String] in
            let v = self[keyPath: row.field]
            return ["--" + row.flag, row.unit == .duration ? "\(v)ms" : "\(v)"]
        }
    }

    /// Whatever no single value can say: the heartbeat must be shorter than the election.
    public func validate() throws(SettingError) {
        guard heartbeatMs < electionTimeoutMs else { throw SettingError(message: "the heartbeat must be shorter than the election timeout") }
    }

    /// Milliseconds of one tick of the core's clock: 10, less for heartbeats under 50ms.
    public var tickMs: Int { max(1, min(10, heartbeatMs / 5)) }

    /// The core's settings: timeouts in ticks of `tickMs`.
    public var core: Settings {
        var s = Settings()
        s.electionTicks = max(2, electionTimeoutMs / tickMs)
        s.heartbeatTicks = max(1, heartbeatMs / tickMs)
        s.snapshotThreshold = snapshotThreshold
        s.snapshotAmortizeFrom = snapshotAmortizeFrom
        s.snapshotTrailing = snapshotTrailing
        s.snapshotChunkSize = snapshotChunk
        s.maxEntriesPerRequest = maxEntriesPerRequest
        return s
    }
}

/// A setting's value that cannot be used, and why.
public struct SettingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension NodeSettings {
    /// The default of the row with this flag, written as a flag takes it.
    public static func defaultText(flag: String) -> String {
        guard let row = row(flag: flag) else { return "" }
        let v = NodeSettings()[keyPath: row.field]
        switch row.unit {
        case .duration: return v % 60_000 == 0 ? "\(v / 60_000)m" : v % 1000 == 0 ? "\(v / 1000)s" : "\(v)ms"
        case .size: return v % (1 << 20) == 0 ? "\(v >> 20)MiB" : v % 1024 == 0 ? "\(v >> 10)KiB" : "\(v)"
        case .count: return "\(v)"
        }
    }

    /// The help line of the row with this flag.
    public static func help(flag: String) -> String { row(flag: flag)?.help ?? "" }
}
