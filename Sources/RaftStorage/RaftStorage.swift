// RaftStorage keeps what a node must not forget, in files under its data directory:
//
//   DIR/meta                     term and votedFor (MetaStore), replaced atomically
//   DIR/log/base                 the compaction point: prevIndex and prevTerm (LogStore)
//   DIR/log/<first index>.seg    log segments: append-only checksummed records (LogStore)
//   DIR/snapshot/<term>_<index>.ss  zlib-compressed snapshot files (SnapshotStore)
//   DIR/archive/log, DIR/archive/snapshot  what compactions freed and newer snapshots
//                                superseded, kept for a checker (Archive; harness runs only)
//
// Numbers in file names are zero-padded to 20 digits, so that names sort by age.
// Everything acknowledged is fsynced first; everything replaced is replaced by writing a
// temporary file, fsyncing it, renaming it and fsyncing the directory. What is damaged is
// reported as a `StorageError` naming the file and the byte offset, and never used.
//
// Files, one idea each:
//   RaftStorage.swift      this overview, and NodeStorage: the three stores of one data dir
//   StorageError.swift     what went wrong, where
//   FileIO.swift           file descriptors, fsync, atomic replacement, directory listing
//   Checksum.swift         CRC-32 (the system zlib's)
//   MetaStore.swift        term and vote
//   LogSegment.swift       the segment file format: header, records, scanning
//   LogStore.swift         the durable log: group commit, truncation, compaction, recovery
//   Zlib.swift             streaming deflate and inflate over the system zlib
//   SnapshotFormat.swift   the snapshot file header
//   SnapshotWriter.swift   streams state into a new snapshot file
//   SnapshotReader.swift   checks a snapshot file and streams its state back
//   SnapshotStore.swift    the snapshot directory: latest, raw chunks, receiving from a leader
//   GoraftImport.swift     converts goraft's JSON snapshot files
//   Archive.swift          keeping retired files instead of deleting them

import Raft

/// The stores of one node's data directory, and the bridge from the core's persisting
/// `Action`s to them.
///
/// A shell calls `persist(_:)` for each action in order and `sync()` before it carries out
/// the first action that depends on them (a send, an apply, ...; RaftNodeMachine's
/// `CarryOutPlan`), so that nothing is acknowledged before it is durable and consecutive
/// appends share one fsync.
public final class NodeStorage {
    public let directory: String
    public let meta: MetaStore
    public let log: LogStore
    public let snapshots: SnapshotStore

    /// Opens (creating if needed) the stores under `directory`. Throws a `StorageError`
    /// naming the file and offset when something on disk is damaged. `keepArchive`: keep
    /// what compactions free and what newer snapshots supersede in `archive/` (`Archive`;
    /// nodes the harness starts); without it an `archive/` left there is deleted.
    public init(directory: String, logOptions: LogStore.Options = .init(), compressionLevel: Int32 = 1, keepArchive: Bool = false) throws {
        self.directory = directory
        try FileSystem.createDirectory(directory)
        try Archive.prepare(dataDirectory: directory, keep: keepArchive)
        meta = try MetaStore(directory: directory)
        log = try LogStore(directory: FileSystem.join(directory, "log"), options: logOptions)
        snapshots = try SnapshotStore(directory: FileSystem.join(directory, "snapshot"), compressionLevel: compressionLevel)
    }

    /// What the core starts from: the term and vote, the newest snapshot, the log.
    public func durableState() throws -> DurableState {
        DurableState(hardState: meta.hardState, snapshot: try snapshots.latest(), log: log.log)
    }

    /// Carries out a persisting action (`saveHardState`, `appendLog`, `truncateLog`,
    /// `compactLog`) and returns true; returns false, doing nothing, for any other action.
    /// Appends are durable only after `sync()`; the others are durable on return.
    @discardableResult
    public func persist(_ action: Action) throws -> Bool {
        switch action {
        case let .saveHardState(hs): try meta.save(hs)
        case let .appendLog(entries): try log.append(entries)
        case let .truncateLog(from): try log.truncate(from: from)
        case let .compactLog(through, term): try log.compact(through: through, term: term)
        default: return false
        }
        return true
    }

    /// Makes every append so far durable (one fsync for all of them).
    public func sync() throws { try log.sync() }

    /// Syncs and closes the log's files.
    public func close() throws { try log.close() }
}
