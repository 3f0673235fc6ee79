import Raft

/// The header of a snapshot file `snapshot/<term>_<index>.ss` (both numbers 20 digits, so
/// that names sort by age). The body that follows is the state machine's bytes compressed
/// with zlib; a follower receives the file's bytes as they are.
///
/// ```
///  0  magic "RAFTSNAP"
///  8  format version u32 (1)
/// 12  header size u32 (bytes before the body, this checksum included)
/// 16  last index u64
/// 24  last term u64
/// 32  configuration: length u32, then `Configuration.encoded()`
///     state size u64 (bytes before compression)
///     body size u64 (compressed bytes after the header)
///     body checksum u32 (CRC-32 of the compressed body)
///     header checksum u32 (CRC-32 of every header byte before it)
/// ```
/// Integers are big-endian.
public struct SnapshotHeader: Sendable, Hashable {
    public static let magic: [UInt8] = Array("RAFTSNAP".utf8)
    public static let version: UInt32 = 1
    public static let fileExtension = ".ss"
    /// Bytes of a header whose configuration takes none.
    static let fixedSize = 60
    static let maxSize = 16 << 20

    public var index: LogIndex
    public var term: Term
    public var configuration: Configuration
    public var stateSize: UInt64
    public var bodySize: UInt64
    public var bodyCRC: UInt32

    public init(index: LogIndex, term: Term, configuration: Configuration, stateSize: UInt64 = 0, bodySize: UInt64 = 0, bodyCRC: UInt32 = 0) {
        self.index = index
        self.term = term
        self.configuration = configuration
        self.stateSize = stateSize
        self.bodySize = bodySize
        self.bodyCRC = bodyCRC
    }

    public var headerSize: Int { Self.fixedSize + configuration.encoded().count }
    /// The whole file's size: what `SnapshotMetadata.size` holds and a transfer streams.
    public var fileSize: UInt64 { UInt64(headerSize) + bodySize }

    public var metadata: SnapshotMetadata {
        SnapshotMetadata(index: index, term: term, configuration: configuration, size: fileSize)
    }

    /// `<term>_<index>.ss`, each number 20 digits.
    public static func fileName(index: LogIndex, term: Term) -> String {
        zeroPadded(term) + "_" + zeroPadded(index) + fileExtension
    }

    /// The (term, index) a snapshot file name stands for, or nil for other names.
    public static func parseFileName(_ name: String) -> (term: Term, index: LogIndex)? {
        guard name.hasSuffix(fileExtension) else { return nil }
        let parts = name.dropLast(fileExtension.count).split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 20 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
            let term = Term(parts[0]), let index = LogIndex(parts[1])
        else { return nil }
        return (term, index)
    }

    public func encoded() -> [UInt8] {
        let config = configuration.encoded()
        var w = ByteWriter(capacity: Self.fixedSize + config.count)
        for b in Self.magic { w.write(b) }
        w.write(Self.version)
        w.write(UInt32(Self.fixedSize + config.count))
        w.write(index)
        w.write(term)
        w.writeBlob(config)
        w.write(stateSize)
        w.write(bodySize)
        w.write(bodyCRC)
        w.write(CRC32.of(w.bytes))
        return w.bytes
    }

    /// Reads and checks the header of the file at `path` (magic, version, header checksum,
    /// configuration, and that the file holds exactly the body the header declares). The
    /// body's checksum is not checked here: see `verifyBody`.
    public static func read(path: String) throws -> SnapshotHeader {
        try read(File.openForReading(path))
    }

    static func read(_ file: File) throws -> SnapshotHeader {
        let path = file.path
        let size = try file.size()
        let start = try file.read(at: 0, count: 16)
        guard start.count >= 8, Array(start[0..<8]) == magic else {
            throw StorageError(.damaged, file: path, offset: 0, start.count < 8 ? "truncated: \(size) bytes, not even a snapshot header" : "not a snapshot file (bad magic)")
        }
        guard start.count == 16 else {
            throw StorageError(.damaged, file: path, offset: size, "truncated: the file ends inside the snapshot header")
        }
        let headerSize = try checkStart(start, path: path)
        guard UInt64(headerSize) <= size else {
            throw StorageError(.damaged, file: path, offset: size, "truncated: the header takes \(headerSize) bytes, the file has \(size)")
        }
        let header = try parse(file.read(at: 0, count: headerSize), path: path)
        if size < header.fileSize {
            throw StorageError(.damaged, file: path, offset: size, "truncated: the header declares a body of \(header.bodySize) bytes at byte \(headerSize), so \(header.fileSize) bytes in all; the file has \(size)")
        }
        if size > header.fileSize {
            throw StorageError(.damaged, file: path, offset: header.fileSize, "\(size - header.fileSize) bytes after the end of the body the header declares")
        }
        return header
    }

    /// Checks the first 16 bytes of a header (magic, version, header size field) and returns
    /// the header's size.
    private static func checkStart(_ bytes: [UInt8], path: String) throws -> Int {
        guard Array(bytes[0..<8]) == magic else {
            throw StorageError(.damaged, file: path, offset: 0, "not a snapshot file (bad magic)")
        }
        let v = readBE32(bytes, 8)
        if v > version {
            throw StorageError(.unsupportedVersion, file: path, offset: 8, "snapshot format version \(v) is newer than this build reads (\(version))")
        }
        guard v == version else { throw StorageError(.damaged, file: path, offset: 8, "bad snapshot format version \(v)") }
        let headerSize = Int(readBE32(bytes, 12))
        guard headerSize >= fixedSize && headerSize <= maxSize else {
            throw StorageError(.damaged, file: path, offset: 12, "bad header size \(headerSize)")
        }
        return headerSize
    }

    /// Parses and checks a whole header (`bytes` holds exactly its `headerSize` bytes, as
    /// the size field at byte 12 says): magic, version, checksum, configuration. Errors name
    /// `path` and the offset in the file.
    static func parse(_ bytes: [UInt8], path: String) throws -> SnapshotHeader {
        guard bytes.count >= 16 else {
            throw StorageError(.damaged, file: path, offset: UInt64(bytes.count), "truncated: \(bytes.count) bytes, not even a snapshot header")
        }
        let headerSize = try checkStart(bytes, path: path)
        guard headerSize == bytes.count else {
            throw StorageError(.damaged, file: path, offset: 12, "bad header size \(headerSize)")
        }
        let stored = readBE32(bytes, headerSize - 4)
        let actual = CRC32.of(bytes[0..<headerSize - 4])
        guard stored == actual else {
            throw StorageError(.damaged, file: path, offset: UInt64(headerSize - 4), "header checksum mismatch: stored \(hex8(stored)), computed \(hex8(actual))")
        }
        var r = ByteReader(bytes[0..<headerSize - 4])
        let header: SnapshotHeader
        do {
            _ = try r.readUInt64("magic")
            _ = try r.readUInt64("version and size")
            let index = try r.readUInt64("last index")
            let term = try r.readUInt64("last term")
            let configStart = r.offset + 4
            let configBytes = try r.readBlob("configuration")
            let configuration: Configuration
            do {
                configuration = try Configuration(decoding: Array(configBytes))
            } catch {
                throw DecodingError(offset: configStart + error.offset, detail: "configuration: \(error.detail)")
            }
            let stateSize = try r.readUInt64("state size")
            let bodySize = try r.readUInt64("body size")
            let bodyCRC = try r.readUInt32("body checksum")
            try r.expectEnd("snapshot header")
            header = SnapshotHeader(index: index, term: term, configuration: configuration, stateSize: stateSize, bodySize: bodySize, bodyCRC: bodyCRC)
        } catch let e as DecodingError {
            throw StorageError(.damaged, file: path, offset: UInt64(e.offset), e.detail)
        }
        guard header.headerSize == headerSize else {
            throw StorageError(.damaged, file: path, offset: 12, "header size \(headerSize) does not match its content (\(header.headerSize))")
        }
        return header
    }

    /// Reads the body of the file at `path` (whose header is `self`) in pieces and checks
    /// its checksum.
    public func verifyBody(path: String) throws {
        try verifyBody(File.openForReading(path))
    }

    func verifyBody(_ file: File) throws {
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var crc = CRC32()
        var offset = UInt64(headerSize)
        let end = fileSize
        while offset < end {
            let want = Int(min(UInt64(chunk), end - offset))
            let n = try file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard n == want else {
                throw StorageError(.damaged, file: file.path, offset: offset + UInt64(n), "truncated: the body ends early")
            }
            crc.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += UInt64(n)
        }
        guard crc.value == bodyCRC else {
            throw StorageError(.damaged, file: file.path, offset: UInt64(headerSize), "body checksum mismatch: the header says \(hex8(bodyCRC)), the \(bodySize) body bytes give \(hex8(crc.value))")
        }
    }
}
