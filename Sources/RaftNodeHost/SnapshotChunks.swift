import Raft
import RaftStorage

/// The snapshot files a leader's transfers read chunks from: each opened once, closed when
/// the machine says no transfer needs it any more (`.snapshotFilesInUse`).
public struct SnapshotChunks {
    private var files: [LogIndex: SnapshotFile] = [:]

    public init() {}

    /// The SnapshotRecoveryRequest that carries `length` bytes at `offset` of `meta`'s file.
    public mutating func message(
        from: NodeID, to: NodeID, term: Term, _ meta: SnapshotMetadata, offset: UInt64, length: Int, done: Bool, in store: SnapshotStore
    ) throws -> Message {
        let file = try files[meta.index] ?? store.openFile(meta)
        files[meta.index] = file
        let data = try file.read(offset: offset, length: length)
        return Message(from: from, to: to, term: term, body: .snapshotRecoveryRequest(
            SnapshotRecoveryRequest(index: meta.index, snapshotTerm: meta.term, offset: offset, data: data, done: done)))
    }

    /// Closes the files of the snapshots not in `inUse`.
    public mutating func keep(only inUse: Set<LogIndex>) {
        for index in files.keys where !inUse.contains(index) { files[index] = nil }
    }
}
