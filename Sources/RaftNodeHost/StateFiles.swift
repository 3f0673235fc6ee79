import Raft
import RaftNodeMachine
import RaftStorage

/// The key-value state as a snapshot file.
public enum StateFiles {
    /// Writes `state` as the snapshot at `index` into `directory`, durably, on the caller's
    /// thread, keeping the older snapshots: the machine says when they go
    /// (`.retireSnapshots`), once it has this one. It opens no `SnapshotStore`: opening one
    /// deletes every temporary file, and a snapshot being received from the leader is one.
    public static func writeSnapshot(
        _ state: KeyValueStore, directory: String, level: Int32, index: LogIndex, term: Term, configuration: Configuration
    ) throws -> SnapshotMetadata {
        let writer = try SnapshotStore.create(in: directory, index: index, term: term, configuration: configuration, compressionLevel: level)
        do {
            try state.serialize { try writer.write($0) }
            return try writer.finish(keepingOlder: true)
        } catch {
            writer.cancel()
            throw error
        }
    }

    /// The state a snapshot file holds.
    public static func restore(_ reader: SnapshotReader) throws -> KeyValueStore {
        var restorer = KeyValueRestorer()
        try reader.forEachPiece { try restorer.feed($0) }
        return try restorer.finish()
    }

    /// The state of the newest snapshot in `storage` (empty when there is none).
    public static func restoreLatest(_ storage: NodeStorage) throws -> KeyValueStore {
        guard let snap = try storage.snapshots.latest(), snap.index > 0 else { return KeyValueStore() }
        return try restore(storage.snapshots.reader(for: snap))
    }
}
