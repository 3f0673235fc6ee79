import Raft

/// A key-value state machine with an order-independent digest, the same in every node.
/// Commands are `key \0 value`.
public struct KeyValueState: Sendable, Hashable {
    public private(set) var values: [String: Value] = [:]
    public private(set) var digest: UInt64 = 0
    public private(set) var appliedIndex: LogIndex = 0

    public struct Value: Sendable, Hashable {
        public var value: String
        /// The index of the entry that wrote it.
        public var index: LogIndex
    }

    public init() {}

    public static func command(key: String, value: String) -> [UInt8] {
        Array(key.utf8) + [0] + Array(value.utf8)
    }

    static func decode(_ payload: [UInt8]) -> (key: String, value: String)? {
        guard let sep = payload.firstIndex(of: 0) else { return nil }
        return (String(decoding: payload[..<sep], as: UTF8.self), String(decoding: payload[(sep + 1)...], as: UTF8.self))
    }

    private static func pairHash(_ key: String, _ value: String) -> UInt64 {
        var h = StableHash()
        h.combine(key)
        h.combine(value)
        return h.finalized
    }

    public mutating func apply(_ entry: Entry) {
        precondition(entry.index == appliedIndex + 1, "apply \(entry.index) after \(appliedIndex)")
        appliedIndex = entry.index
        guard entry.type == .command, let (key, value) = Self.decode(entry.payload) else { return }
        if let old = values[key] { digest &-= Self.pairHash(key, old.value) }
        values[key] = Value(value: value, index: entry.index)
        digest &+= Self.pairHash(key, value)
    }

    /// The state as snapshot bytes: a small header, then the pairs in key order.
    public func serialized() -> [UInt8] {
        var w = ByteWriter()
        w.write(UInt32(0x5349_4d53))  // "SIMS"
        w.write(appliedIndex)
        w.write(UInt32(values.count))
        for key in values.keys.sorted() {
            let v = values[key]!
            w.write(key)
            w.write(v.value)
            w.write(v.index)
        }
        w.write(digest)
        return w.bytes
    }

    public init(deserializing bytes: [UInt8]) throws(DecodingError) {
        var r = ByteReader(bytes)
        guard try r.readUInt32("magic") == 0x5349_4d53 else { throw DecodingError(offset: 0, detail: "bad magic") }
        appliedIndex = try r.readUInt64("applied index")
        let n = Int(try r.readUInt32("count"))
        for _ in 0..<n {
            let key = try r.readString("key")
            let value = try r.readString("value")
            let index = try r.readUInt64("index")
            values[key] = Value(value: value, index: index)
            digest &+= Self.pairHash(key, value)
        }
        let stored = try r.readUInt64("digest")
        guard stored == digest else { throw DecodingError(offset: r.offset - 8, detail: "digest mismatch") }
        try r.expectEnd("snapshot")
    }
}

/// What survives a crash: exactly what the core asked to persist and the shell finished.
struct Disk {
    var hardState = HardState()
    var log = RaftLog()
    /// Snapshot files by (index, term); the newest is `latest`. Older files stay readable for
    /// transfers under way, as an open file descriptor keeps a deleted file on Linux.
    var snapshots: [SnapshotKey: [UInt8]] = [:]
    var latest: SnapshotMetadata?

    struct SnapshotKey: Hashable {
        var index: LogIndex
        var term: Term
        init(_ m: SnapshotMetadata) {
            index = m.index
            term = m.term
        }
    }

    var durableState: DurableState { DurableState(hardState: hardState, snapshot: latest, log: log) }

    /// Stores a snapshot file and deletes older ones, except those that `inUse` (transfers
    /// under way keep theirs open, as the node does); `keepingOlder`, deletes none (a node
    /// machine's take: it retires the older files itself, `retireSnapshots`).
    mutating func storeSnapshot(_ meta: SnapshotMetadata, _ bytes: [UInt8], keepingOlder: Bool = false, inUse: Set<SnapshotKey> = []) {
        snapshots[SnapshotKey(meta)] = bytes
        if meta.index >= (latest?.index ?? 0) { latest = meta }
        if !keepingOlder { retireSnapshots(olderThan: latest?.index ?? 0) { inUse.contains($0) } }
    }

    /// Deletes the snapshot files before `index`, except those `kept` says a transfer reads.
    mutating func retireSnapshots(olderThan index: LogIndex, except kept: (SnapshotKey) -> Bool) {
        for key in snapshots.keys where key.index < index && !kept(key) {
            snapshots[key] = nil
        }
    }
}

extension Disk {
    /// Carries out one of the core's storage actions as a node's storage does, checking the
    /// shell contract (and log matching, as entries become durable) on the way.
    mutating func persist(_ action: Action, by id: NodeID, time: Int, invariants: inout Invariants) {
        switch action {
        case .saveHardState(let hs):
            hardState = hs
        case .appendLog(let entries):
            guard let first = entries.first else { return }
            if first.index <= log.lastIndex {
                guard first.index > log.prevIndex else {
                    invariants.fail(.shell, time, "\(id) appends \(first.index) at or before its compaction point \(log.prevIndex)")
                    return
                }
                log.truncate(from: first.index)
            }
            guard first.index == log.lastIndex + 1, let prevTerm = log.term(at: first.index - 1) else {
                invariants.fail(.shell, time, "\(id) appends \(first.index) after \(log.lastIndex)")
                return
            }
            log.append(entries)
            invariants.appended(entries, prevTerm: prevTerm, by: id, time: time)
        case .truncateLog(let from):
            if from > log.prevIndex { log.truncate(from: from) }
        case let .compactLog(through, term):
            guard let latest = latest, latest.index >= through else {
                invariants.fail(.shell, time, "\(id) compacts through \(through) beyond its durable snapshot \(latest?.index ?? 0)")
                return
            }
            log.compact(through: through, term: term)
        default:
            break
        }
    }
}

extension Disk {
    enum ChunkRead {
        case message(Message)
        /// The file is gone (superseded twice over): the transfer starts over.
        case fileGone
    }

    /// The `SnapshotRecoveryRequest` a node sends for `length` bytes at `offset` of its
    /// snapshot file `meta`; nil (the shell contract broken, recorded) when the file does not
    /// hold them.
    func snapshotChunk(
        from id: NodeID, to: NodeID, term: Term, _ meta: SnapshotMetadata, offset: UInt64, length: Int, done: Bool, time: Int,
        invariants: inout Invariants
    ) -> ChunkRead? {
        guard let bytes = snapshots[SnapshotKey(meta)] else { return .fileGone }
        guard offset + UInt64(length) <= UInt64(bytes.count), UInt64(bytes.count) == meta.size else {
            invariants.fail(.shell, time, "\(id) sends \(length) bytes at \(offset) of \(meta) whose file has \(bytes.count)")
            return nil
        }
        let data = Array(bytes[Int(offset)..<Int(offset) + length])
        return .message(Message(from: id, to: to, term: term, body: .snapshotRecoveryRequest(
            SnapshotRecoveryRequest(index: meta.index, snapshotTerm: meta.term, offset: offset, data: data, done: done))))
    }
}

/// One simulated member: its disk, and while it runs, its core and state machine.
struct SimulatedNode {
    let id: NodeID
    var disk: Disk
    var core: RaftCore?
    var state = KeyValueState()
    /// The snapshot being received into a temporary file (lost in a crash).
    var receiving: (meta: SnapshotMetadata, bytes: [UInt8])?
    /// Bumped by each crash, so that events meant for an earlier life are dropped.
    var incarnation = 0
    /// The node learned it was removed and stopped for good.
    var exited = false
    var restarts = 0

    var isRunning: Bool { core != nil }
}
