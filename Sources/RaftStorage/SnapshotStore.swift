#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Raft

/// The snapshot directory of a node: `<term>_<index>.ss` files (`SnapshotHeader`), the
/// newest of which is the node's snapshot. Older ones are deleted (or archived, `Archive`)
/// once a newer one is durable; temporary files (`*.tmp`) left by a crash are deleted when the store opens.
///
/// - Taking a snapshot: `create(...)` gives a `SnapshotWriter` to stream the state into.
/// - Restoring: `reader(for:)` checks the file and streams the state back.
/// - Sending to a follower: `openFile(_:)` / `readChunk(of:offset:length:)` give the
///   file's raw bytes, compressed as they are.
/// - Receiving from a leader: `receive(_:)` gives a `SnapshotReceiver` that writes raw
///   chunks at their offsets and installs the file once it checks.
public final class SnapshotStore {
    public let directory: String
    /// zlib level for new snapshots (1 fastest ... 9 smallest).
    public let compressionLevel: Int32

    public init(directory: String, compressionLevel: Int32 = 1) throws {
        self.directory = directory
        self.compressionLevel = compressionLevel
        try FileSystem.createDirectory(directory)
        var removed = false
        for name in try FileSystem.list(directory) where name.hasSuffix(".tmp") {
            try FileSystem.remove(FileSystem.join(directory, name))
            removed = true
        }
        if removed { try FileSystem.syncDirectory(directory) }
    }

    /// Snapshot file names, oldest first.
    public func fileNames() throws -> [String] {
        try FileSystem.list(directory).filter { SnapshotHeader.parseFileName($0) != nil }
    }

    public func path(index: LogIndex, term: Term) -> String {
        FileSystem.join(directory, SnapshotHeader.fileName(index: index, term: term))
    }

    public func path(for meta: SnapshotMetadata) -> String { path(index: meta.index, term: meta.term) }

    /// The newest snapshot, its header checked (not its body: `reader(for:)` does that), or
    /// nil when there is none. A damaged newest file is an error, never skipped.
    public func latest() throws -> SnapshotMetadata? {
        guard let name = try fileNames().last else { return nil }
        let path = FileSystem.join(directory, name)
        let header = try SnapshotHeader.read(path: path)
        if let (term, index) = SnapshotHeader.parseFileName(name), term != header.term || index != header.index {
            throw StorageError(.damaged, file: path, offset: 16, "the header says index \(header.index) term \(header.term), the file name says index \(index) term \(term)")
        }
        return header.metadata
    }

    /// Starts a new snapshot covering the log through `index` (whose term is `term`), with
    /// the configuration in force there.
    public func create(index: LogIndex, term: Term, configuration: Configuration) throws -> SnapshotWriter {
        try SnapshotWriter(directory: directory, index: index, term: term, configuration: configuration, level: compressionLevel)
    }

    /// Starts a new snapshot in `directory` without opening the store there: for a thread
    /// other than the store's owner (a take in the background), since opening a store
    /// deletes every temporary file, a receive in progress included.
    public static func create(
        in directory: String, index: LogIndex, term: Term, configuration: Configuration, compressionLevel: Int32 = 1
    ) throws -> SnapshotWriter {
        try SnapshotWriter(directory: directory, index: index, term: term, configuration: configuration, level: compressionLevel)
    }

    /// Writes a copy of `source`, the file of snapshot `meta` that another store wrote, into
    /// `directory` as that snapshot, durably (temporary file, fsync, rename, fsync of the
    /// directory), and removes the older ones, as `SnapshotWriter.finish` leaves its own. For
    /// the simulator, whose nodes often take byte-identical snapshots (the same state at the
    /// same index, term and configuration): deflating each again was most of a run's time.
    public static func copy(_ source: String, as meta: SnapshotMetadata, into directory: String, keepingOlder: Bool = false) throws -> SnapshotMetadata {
        guard let bytes = try FileSystem.readFile(source), UInt64(bytes.count) == meta.size else {
            throw StorageError(.misuse, file: source, "not the file of snapshot \(meta)")
        }
        let name = SnapshotHeader.fileName(index: meta.index, term: meta.term)
        try FileSystem.writeAtomically(bytes, to: FileSystem.join(directory, name))
        if !keepingOlder { try? removeOlder(than: name, in: directory) }
        return meta
    }

    /// Writes the snapshot of a new cluster's first configuration: index 0, term 0, empty state.
    public func bootstrap(_ configuration: Configuration) throws -> SnapshotMetadata {
        try create(index: 0, term: 0, configuration: configuration).finish()
    }

    /// A reader of the snapshot `meta` names, after checking that the file is that snapshot.
    public func reader(for meta: SnapshotMetadata, verifyBody: Bool = true) throws -> SnapshotReader {
        let reader = try SnapshotReader(path: path(for: meta), verifyBody: verifyBody)
        try Self.check(reader.metadata, matches: meta, path: reader.path)
        return reader
    }

    /// The file of `meta`, open for reading raw chunks (it stays readable while open even if
    /// a newer snapshot replaces it).
    public func openFile(_ meta: SnapshotMetadata) throws -> SnapshotFile {
        try SnapshotFile(path: path(for: meta), metadata: meta)
    }

    /// `length` raw bytes of the file of `meta` at `offset` (fewer at its end): what a
    /// leader sends in a `SnapshotRecoveryRequest`.
    public func readChunk(of meta: SnapshotMetadata, offset: UInt64, length: Int) throws -> [UInt8] {
        try openFile(meta).read(offset: offset, length: length)
    }

    /// Starts receiving `meta` from a leader, discarding any earlier unfinished receive.
    public func receive(_ meta: SnapshotMetadata) throws -> SnapshotReceiver {
        for name in try FileSystem.list(directory) where name.hasSuffix(".receiving.tmp") {
            try FileSystem.remove(FileSystem.join(directory, name))
        }
        return try SnapshotReceiver(directory: directory, metadata: meta)
    }

    /// Deletes (or archives) the snapshot files older than `meta`, whose file is durable: what
    /// a node does once its machine has taken `meta` as its newest (`.retireSnapshots`), so
    /// that the file of the snapshot the machine offers to a peer exists until then.
    public func retire(olderThan meta: SnapshotMetadata) throws {
        try Self.removeOlder(than: SnapshotHeader.fileName(index: meta.index, term: meta.term), in: directory)
    }

    /// Deletes the snapshot files whose names sort before `name` (older ones), or moves them
    /// into the data dir's archive when it keeps one (`Archive`), then fsyncs the directory.
    /// Call only once `name` is durable.
    static func removeOlder(than name: String, in directory: String) throws {
        var removed = false
        for other in try FileSystem.list(directory) where SnapshotHeader.parseFileName(other) != nil && other < name {
            try Archive.retire(FileSystem.join(directory, other), from: directory)
            removed = true
        }
        if removed { try FileSystem.syncDirectory(directory) }
    }

    static func check(_ found: SnapshotMetadata, matches expected: SnapshotMetadata, path: String) throws {
        guard found.index == expected.index, found.term == expected.term, found.configuration == expected.configuration, found.size == expected.size else {
            throw StorageError(.damaged, file: path, offset: 16, "the file holds \(found) \(found.configuration), expected \(expected) \(expected.configuration)")
        }
    }
}

/// A snapshot file open for reading raw bytes, to send them to a follower as they are.
public final class SnapshotFile {
    public let metadata: SnapshotMetadata
    public let path: String
    private let file: File

    init(path: String, metadata: SnapshotMetadata) throws {
        self.path = path
        self.metadata = metadata
        file = try File.openForReading(path)
        let size = try file.size()
        guard size == metadata.size else {
            throw StorageError(.damaged, file: path, offset: min(size, metadata.size), "the file has \(size) bytes, \(metadata) expects \(metadata.size)")
        }
    }

    /// Up to `length` bytes at `offset`; fewer at the end of the file.
    public func read(offset: UInt64, length: Int) throws -> [UInt8] {
        guard offset <= metadata.size else {
            throw StorageError(.misuse, file: path, offset: offset, "read past the end of a \(metadata.size)-byte snapshot")
        }
        return try file.read(at: offset, count: Int(min(UInt64(length), metadata.size - offset)))
    }
}

/// Receives a snapshot file from a leader: raw chunks written at their offsets into a
/// temporary file, then `install()` checks the whole file (size, header against the
/// announced metadata, both checksums), makes it durable under its final name, and
/// deletes the older snapshots. `abort()` discards it.
public final class SnapshotReceiver {
    public let metadata: SnapshotMetadata
    /// The final path, valid once `install()` returned.
    public let path: String
    /// The temporary file the chunks go to; a `SnapshotStreamDecoder` may read it as it grows.
    public let tempPath: String
    let directory: String
    private var file: File?
    /// The end of the furthest chunk written.
    public private(set) var received: UInt64 = 0

    init(directory: String, metadata: SnapshotMetadata) throws {
        self.directory = directory
        self.metadata = metadata
        let name = SnapshotHeader.fileName(index: metadata.index, term: metadata.term)
        path = FileSystem.join(directory, name)
        // Unique, so that a receive started again for the same snapshot never shares its
        // file with the one it replaces (whose abort would delete it).
        tempPath = FileSystem.join(directory, name + "." + uniqueSuffix() + ".receiving.tmp")
        file = try File(path: tempPath, flags: O_WRONLY | O_CREAT | O_TRUNC)
    }

    deinit { if file != nil { abort() } }

    /// Writes a chunk at `offset` of the file. A chunk past the announced size is refused.
    public func write(at offset: UInt64, _ data: [UInt8]) throws {
        guard let file else { throw StorageError(.misuse, file: tempPath, "write to a receive that is installed or aborted") }
        guard offset + UInt64(data.count) <= metadata.size else {
            throw StorageError(.misuse, file: tempPath, offset: offset, "a chunk of \(data.count) bytes at \(offset) runs past the \(metadata.size) bytes of \(metadata)")
        }
        try file.write(at: offset, data)
        received = max(received, offset + UInt64(data.count))
    }

    /// Checks the received file and makes it the node's snapshot. On failure the receive is
    /// discarded and the error names what is wrong. `bodyVerified`: a `SnapshotStreamDecoder`
    /// has read every byte of the temporary file and checked the body (its checksum among
    /// the rest), so it is not read again; the header is checked either way.
    public func install(bodyVerified: Bool = false) throws -> SnapshotMetadata {
        guard let file else { throw StorageError(.misuse, file: tempPath, "install of a receive that is installed or aborted") }
        do {
            try file.sync()
            file.close()
            self.file = nil
            let reader = try File.openForReading(tempPath)
            let header = try SnapshotHeader.read(reader)
            try SnapshotStore.check(header.metadata, matches: metadata, path: tempPath)
            if !bodyVerified { try header.verifyBody(reader) }
            try FileSystem.rename(tempPath, path)
            try FileSystem.syncDirectory(directory)
            // The new file is durable under its name: it is the snapshot now. Deleting the
            // older ones is clean-up, done again after the next snapshot if it fails here.
            try? SnapshotStore.removeOlder(than: FileSystem.baseName(path), in: directory)
            return header.metadata
        } catch {
            abort()
            throw error
        }
    }

    /// The temporary file open for reading, to decode what has been written so far while
    /// the rest arrives (see `SnapshotStreamDecoder`). It stays readable after an abort.
    public func openForReading() throws -> SnapshotReceivedBytes {
        try SnapshotReceivedBytes(file: File.openForReading(tempPath))
    }

    /// Discards the file being received.
    public func abort() {
        file?.close()
        file = nil
        try? FileSystem.remove(tempPath)
    }
}

/// A snapshot file being received, open for reading on another thread than the writer's.
public final class SnapshotReceivedBytes {
    private let file: File
    public var path: String { file.path }

    init(file: File) { self.file = file }

    /// Reads up to `buffer.count` bytes at `offset` (fewer only where the file ends).
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try file.read(at: offset, into: buffer)
    }
}
