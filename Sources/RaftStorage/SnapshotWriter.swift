#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Raft

/// Writes a new snapshot file from the state machine's bytes, given in pieces: each piece
/// is compressed as it comes and written to a temporary file, so the state is never held
/// whole. `finish()` makes the file durable under its final name (fsync, rename, fsync of
/// the directory) and only then deletes older snapshots; `cancel()` discards it.
/// Get one from `SnapshotStore.create`.
public final class SnapshotWriter {
    public let index: LogIndex
    public let term: Term
    public let configuration: Configuration
    /// The final path, valid once `finish()` returned.
    public let path: String
    let tempPath: String
    let directory: String

    private var file: File?
    private let deflater: Deflater
    private let headerSize: Int
    private var bodySize: UInt64 = 0
    private var bodyCRC = CRC32()
    /// State bytes taken in so far.
    public private(set) var stateSize: UInt64 = 0

    init(directory: String, index: LogIndex, term: Term, configuration: Configuration, level: Int32) throws {
        self.index = index
        self.term = term
        self.configuration = configuration
        self.directory = directory
        let name = SnapshotHeader.fileName(index: index, term: term)
        path = FileSystem.join(directory, name)
        tempPath = FileSystem.join(directory, name + "." + uniqueSuffix() + ".writing.tmp")
        headerSize = SnapshotHeader(index: index, term: term, configuration: configuration).headerSize
        deflater = try Deflater(level: level)
        file = try File(path: tempPath, flags: O_WRONLY | O_CREAT | O_TRUNC)
    }

    deinit { if file != nil { cancel() } }

    /// Compresses and writes the next piece of the state.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let file else { throw StorageError(.misuse, file: tempPath, "write to a snapshot that is finished or cancelled") }
        stateSize += UInt64(bytes.count)
        do {
            try deflater.compress(bytes) { try emit($0, to: file) }
        } catch {
            cancel()
            throw error
        }
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
    public func write(_ bytes: ArraySlice<UInt8>) throws { try bytes.withUnsafeBytes { try write($0) } }

    private func emit(_ chunk: UnsafeRawBufferPointer, to file: File) throws {
        try file.write(at: UInt64(headerSize) + bodySize, chunk)
        bodyCRC.update(chunk)
        bodySize += UInt64(chunk.count)
    }

    /// Ends the stream, writes the header, and makes the file durable under its final name;
    /// then deletes the older snapshots, unless `keepingOlder` (a node's take: the older ones
    /// go when its machine has the new one, `SnapshotStore.retire(olderThan:)`). Returns the
    /// new snapshot's metadata (its `size` is the file's size).
    public func finish(keepingOlder: Bool = false) throws -> SnapshotMetadata {
        guard let file else { throw StorageError(.misuse, file: tempPath, "finish of a snapshot that is finished or cancelled") }
        do {
            try deflater.finish { try emit($0, to: file) }
            let header = SnapshotHeader(index: index, term: term, configuration: configuration, stateSize: stateSize, bodySize: bodySize, bodyCRC: bodyCRC.value)
            try file.write(at: 0, header.encoded())
            try file.sync()
            file.close()
            self.file = nil
            try FileSystem.rename(tempPath, path)
            try FileSystem.syncDirectory(directory)
            // The new file is durable under its name: it is the snapshot now. Deleting the
            // older ones is clean-up, done again after the next snapshot if it fails here.
            if !keepingOlder { try? SnapshotStore.removeOlder(than: FileSystem.baseName(path), in: directory) }
            return header.metadata
        } catch {
            cancel()
            throw error
        }
    }

    /// Discards the snapshot being written. Older snapshots are untouched.
    public func cancel() {
        file?.close()
        file = nil
        try? FileSystem.remove(tempPath)
    }
}
