import Raft

/// The term and the vote cast in it (`HardState`), in the file `meta` of a data directory.
///
/// Every save replaces the file atomically (temporary file, fsync, rename, fsync of the
/// directory) and is durable when `save` returns: a crash leaves the old or the new state,
/// never a mix, and never a vote that was sent but forgotten.
///
/// Format: magic `RAFTMETA`, version (u32), term (u64), votedFor (flag, then length-prefixed
/// UTF-8), CRC-32 of everything before it (u32); integers big-endian. Version 2 adds a flags
/// byte before the CRC (bit 0: joining); it is written only when a flag is set, so the file
/// of every other state stays version 1, byte for byte.
public final class MetaStore {
    public static let fileName = "meta"
    static let magic: [UInt8] = Array("RAFTMETA".utf8)
    static let version: UInt32 = 2

    public let path: String
    /// The state as last saved (or loaded).
    public private(set) var hardState: HardState

    /// Loads `DIR/meta`; a missing file is the state of a new node (term 0, no vote).
    public init(directory: String) throws {
        path = FileSystem.join(directory, Self.fileName)
        if let bytes = try FileSystem.readFile(path) {
            hardState = try Self.decode(bytes, file: path)
        } else {
            hardState = HardState()
        }
    }

    /// Makes `state` durable; on return it survives a crash.
    public func save(_ state: HardState) throws {
        guard state != hardState || !FileSystem.exists(path) else { return }
        try FileSystem.writeAtomically(Self.encode(state), to: path)
        hardState = state
    }

    public static func encode(_ state: HardState) -> [UInt8] {
        var w = ByteWriter()
        for b in magic { w.write(b) }
        w.write(state.joining ? version : 1)
        w.write(state.term)
        w.writeOptional(state.votedFor)
        if state.joining { w.write(UInt8(1)) }
        let crc = CRC32.of(w.bytes)
        w.write(crc)
        return w.bytes
    }

    /// Reads a meta file's bytes; `file` names it in errors.
    public static func decode(_ bytes: [UInt8], file: String) throws -> HardState {
        guard bytes.count >= 12, Array(bytes[0..<8]) == magic else {
            throw StorageError(.damaged, file: file, offset: 0, "not a meta file (bad magic)")
        }
        var r = ByteReader(bytes)
        do {
            _ = try r.readUInt64("magic")
            let v = try r.readUInt32("version")
            if v > version {
                throw StorageError(.unsupportedVersion, file: file, offset: 8, "meta format version \(v) is newer than this build reads (\(version))")
            }
            guard v == 1 || v == 2 else { throw StorageError(.damaged, file: file, offset: 8, "bad meta format version \(v)") }
            let term = try r.readUInt64("term")
            let vote = try r.readOptionalString("votedFor")
            var joining = false
            if v == 2 {
                let flagsAt = r.offset
                let flags = try r.readUInt8("flags")
                guard flags & ~1 == 0 else { throw StorageError(.damaged, file: file, offset: UInt64(flagsAt), "unknown meta flags \(flags)") }
                joining = flags & 1 != 0
            }
            let end = r.offset
            let stored = try r.readUInt32("checksum")
            try r.expectEnd("meta")
            let actual = CRC32.of(bytes[0..<end])
            guard stored == actual else {
                throw StorageError(.damaged, file: file, offset: UInt64(end), "checksum mismatch: stored \(hex8(stored)), computed \(hex8(actual))")
            }
            return HardState(term: term, votedFor: vote, joining: joining)
        } catch let e as DecodingError {
            throw StorageError(.damaged, file: file, offset: UInt64(e.offset), e.detail)
        }
    }
}

/// Eight lower-case hex digits.
func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}
