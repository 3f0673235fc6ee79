import Foundation
import Raft
import RaftNodeMachine
import RaftNodeWire
import RaftStorage

/// A field of an event line written by `NodeDataWriter`.
public enum EventField: Sendable, Hashable {
    case int(UInt64)
    case string(String)
    case strings([String])

    var json: JSONValue {
        switch self {
        case let .int(i): .int(Int64(clamping: i))
        case let .string(s): .string(s)
        case let .strings(a): .strings(a)
        }
    }
}

/// Writes a node's data dir as raft-node leaves it, with the real code: `NodeStorage` for
/// meta, log segments, base and snapshot files, `KeyValueStore.serialize` for snapshot
/// state, `Command` for command payloads, `JSONValue` for events.jsonl lines. For checker
/// fixtures and tests: the files are real, the history they tell is whatever the caller says.
public final class NodeDataWriter {
    public let directory: String
    public let node: NodeID
    private let storage: NodeStorage
    private var eventLines: [String] = []

    /// `keepArchive`: as a node the harness starts, keep what compactions free and newer
    /// snapshots supersede in `archive/`.
    public init(directory: String, node: NodeID, keepArchive: Bool = true) throws {
        self.directory = directory
        self.node = node
        // No space reserved ahead of appends: fixtures hold their records and nothing else.
        storage = try NodeStorage(directory: directory, logOptions: .init(reserveStep: 0), keepArchive: keepArchive)
    }

    /// The payload of a put command.
    public static func put(_ key: String, _ value: String) -> [UInt8] { Command.put(key: key, value: value).encoded() }

    /// The state digest of these pairs, as `status` and `harness inspect` report it.
    public static func digest(of pairs: [String: String]) -> String { store(pairs).digestHex }

    static func store(_ pairs: [String: String]) -> KeyValueStore {
        var s = KeyValueStore()
        for (k, v) in pairs { s.put(k, v) }
        return s
    }

    public func saveHardState(term: Term, votedFor: NodeID?) throws {
        try storage.meta.save(HardState(term: term, votedFor: votedFor))
    }

    /// Appends (replacing any entries from the first one's index on) and syncs.
    public func append(_ entries: [Entry]) throws {
        try storage.log.append(entries)
        try storage.sync()
    }

    /// Writes a snapshot file of `pairs` at (index, term), then compacts the log through it.
    public func snapshot(index: LogIndex, term: Term, configuration: Configuration, state pairs: [String: String], compact: Bool = true) throws {
        let writer = try storage.snapshots.create(index: index, term: term, configuration: configuration)
        try Self.store(pairs).serialize { try writer.write($0) }
        _ = try writer.finish()
        if compact { try storage.log.compact(through: index, term: term) }
    }

    /// An `apply` event: entries `from` through `index` applied, the last of term `term`.
    public func apply(from: LogIndex, through index: LogIndex, term: Term, ts: String) {
        event("apply", term: term, ts: ts, [("index", .int(index)), ("from", .int(from))])
    }

    /// Appends an events.jsonl line: `ts`, `node`, `term`, `event`, then `fields`.
    public func event(_ event: String, term: Term, ts: String, _ fields: [(String, EventField)] = []) {
        let object: [(String, JSONValue)] = [("ts", .string(ts)), ("node", .string(node)), ("term", .int(Int64(term))), ("event", .string(event))]
            + fields.map { ($0.0, $0.1.json) }
        eventLines.append(JSONValue.object(object).serialized)
    }

    /// Closes the storage and writes events.jsonl.
    public func close() throws {
        try storage.close()
        let text = eventLines.map { $0 + "\n" }.joined()
        try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/events.jsonl"))
    }
}
