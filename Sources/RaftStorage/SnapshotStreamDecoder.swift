import Raft

/// Decodes a snapshot file from its raw bytes as they come, in order and in pieces of any
/// size: what a follower does while a snapshot is still being received, so that restoring
/// the state overlaps the transfer instead of following it.
///
/// It checks what `SnapshotReader` checks, as soon as it can: the header against the
/// snapshot the leader announced, the body's CRC-32, that the zlib stream ends exactly at
/// the end of the file and gives exactly the state size the header declares. State bytes
/// come out through `emit` in pieces of `pieceSize` (the last may be shorter); nothing is
/// held but one piece. Errors name `path` and the offset in the file. No I/O of its own.
public final class SnapshotStreamDecoder {
    public let expected: SnapshotMetadata
    public let path: String
    /// The header, once its bytes have come.
    public private(set) var header: SnapshotHeader?
    /// Raw file bytes taken so far.
    public private(set) var consumed: UInt64 = 0

    private let headerSize: Int
    private var headerBytes: [UInt8] = []
    private let inflater: Inflater
    private var crc = CRC32()
    private let out: UnsafeMutableRawBufferPointer
    private var produced = 0

    /// `expected` comes from the SnapshotRequest; `path` is the file the bytes are written to.
    public init(expected: SnapshotMetadata, path: String, pieceSize: Int = 256 << 10) throws {
        precondition(pieceSize > 0)
        self.expected = expected
        self.path = path
        headerSize = SnapshotHeader(index: expected.index, term: expected.term, configuration: expected.configuration).headerSize
        inflater = try Inflater()
        out = .allocate(byteCount: pieceSize, alignment: 16)
    }

    deinit { out.deallocate() }

    /// Takes the next raw bytes of the file (those at offset `consumed`).
    public func feed(_ raw: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard raw.count > 0 else { return }
        guard consumed + UInt64(raw.count) <= expected.size else {
            throw StorageError(.damaged, file: path, offset: expected.size, "more bytes than the \(expected.size) the snapshot was announced with")
        }
        var rest = raw
        if header == nil {
            let take = min(headerSize - headerBytes.count, rest.count)
            headerBytes += rest[0..<take]
            consumed += UInt64(take)
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            guard headerBytes.count == headerSize else { return }
            let h = try SnapshotHeader.parse(headerBytes, path: path)
            try SnapshotStore.check(h.metadata, matches: expected, path: path)
            header = h
            headerBytes = []
        }
        guard let header, rest.count > 0 else { return }
        crc.update(rest)
        inflater.setInput(rest)
        let bodyStart = UInt64(headerSize)
        // Until zlib needs more input: a full piece is emitted and zlib asked again, as it may
        // hold output of input it already took.
        while !inflater.finished {
            let pending = inflater.pendingInput
            let n: Int
            do {
                n = try inflater.inflate(into: UnsafeMutableRawBufferPointer(rebasing: out[produced...]))
            } catch {
                throw StorageError(.damaged, file: path, offset: bodyStart + error.consumed, error.detail)
            }
            produced += n
            if inflater.totalOut > header.stateSize {
                throw StorageError(.damaged, file: path, offset: bodyStart + inflater.totalIn, "the body decompresses to more than the \(header.stateSize) state bytes the header declares")
            }
            if produced == out.count {
                try emit(UnsafeRawBufferPointer(out))
                produced = 0
                continue
            }
            if inflater.pendingInput == 0 { break }
            if n == 0 && inflater.pendingInput == pending {
                // zlib took nothing with input and room for output: never leave input behind.
                throw StorageError(.damaged, file: path, offset: bodyStart + inflater.totalIn, "the zlib stream cannot be decompressed further")
            }
        }
        consumed += UInt64(rest.count)
        if inflater.finished && inflater.pendingInput > 0 {
            throw StorageError(.damaged, file: path, offset: bodyStart + inflater.totalIn, "bytes after the end of the zlib stream")
        }
    }

    /// Once every byte of the file came: emits the last piece and checks the whole. Returns
    /// the header.
    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws -> SnapshotHeader {
        guard let header, consumed == expected.size else {
            throw StorageError(.damaged, file: path, offset: consumed, "truncated: \(consumed) of \(expected.size) bytes")
        }
        guard crc.value == header.bodyCRC else {
            throw StorageError(.damaged, file: path, offset: UInt64(headerSize), "body checksum mismatch: the header says \(hex8(header.bodyCRC)), the \(header.bodySize) body bytes give \(hex8(crc.value))")
        }
        let end = UInt64(headerSize) + inflater.totalIn
        guard inflater.finished else {
            throw StorageError(.damaged, file: path, offset: end, "the compressed body ends before its zlib stream does")
        }
        guard inflater.totalOut == header.stateSize else {
            throw StorageError(.damaged, file: path, offset: end, "the body decompresses to \(inflater.totalOut) state bytes, the header declares \(header.stateSize)")
        }
        if produced > 0 {
            try emit(UnsafeRawBufferPointer(rebasing: out[0..<produced]))
            produced = 0
        }
        return header
    }
}
