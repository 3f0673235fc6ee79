import Raft

/// Reads a snapshot file: checks its header and the checksum of its compressed body when
/// opened, then gives back the state machine's bytes in pieces, decompressing as it goes
/// (the state is never held whole).
public final class SnapshotReader {
    public let path: String
    public let header: SnapshotHeader
    public var metadata: SnapshotMetadata { header.metadata }

    private let file: File
    private let inflater: Inflater
    private let input: UnsafeMutableRawBufferPointer
    private var readOffset: UInt64
    private var done = false

    /// Opens the snapshot at `path`, checking the header and (unless `verifyBody` is false)
    /// the body's checksum, which reads the compressed body once.
    public init(path: String, verifyBody: Bool = true) throws {
        self.path = path
        file = try File.openForReading(path)
        header = try SnapshotHeader.read(file)
        if verifyBody { try header.verifyBody(file) }
        inflater = try Inflater()
        input = .allocate(byteCount: 256 << 10, alignment: 16)
        readOffset = UInt64(header.headerSize)
    }

    deinit { input.deallocate() }

    /// State bytes given back so far.
    public var stateBytesRead: UInt64 { inflater.totalOut }

    /// The next piece of the state, at most `maxBytes` (and as many as are left up to it),
    /// or nil at the end. Throws when the body does not decompress to exactly the state the
    /// header declares.
    public func read(maxBytes: Int = 1 << 16) throws -> [UInt8]? {
        precondition(maxBytes > 0)
        if done { return nil }
        var out = [UInt8](repeating: 0, count: maxBytes)
        var produced = 0
        try out.withUnsafeMutableBytes { out in
            while produced < maxBytes && !inflater.finished {
                if inflater.pendingInput == 0 {
                    let end = header.fileSize
                    guard readOffset < end else {
                        throw StorageError(.damaged, file: path, offset: end, "the compressed body ends before its zlib stream does")
                    }
                    let want = Int(min(UInt64(input.count), end - readOffset))
                    let n = try file.read(at: readOffset, into: UnsafeMutableRawBufferPointer(rebasing: input[0..<want]))
                    guard n == want else {
                        throw StorageError(.damaged, file: path, offset: readOffset + UInt64(n), "truncated: the body ends early")
                    }
                    readOffset += UInt64(n)
                    inflater.setInput(UnsafeRawBufferPointer(rebasing: input[0..<n]))
                }
                do {
                    produced += try inflater.inflate(into: UnsafeMutableRawBufferPointer(rebasing: out[produced...]))
                } catch let error as InflateError {
                    throw StorageError(.damaged, file: path, offset: UInt64(header.headerSize) + error.consumed, error.detail)
                }
                if inflater.totalOut > header.stateSize {
                    throw StorageError(.damaged, file: path, offset: UInt64(header.headerSize) + inflater.totalIn, "the body decompresses to more than the \(header.stateSize) state bytes the header declares")
                }
            }
        }
        if inflater.finished {
            let consumed = UInt64(header.headerSize) + inflater.totalIn
            guard consumed == header.fileSize else {
                throw StorageError(.damaged, file: path, offset: consumed, "\(header.fileSize - consumed) bytes after the end of the zlib stream")
            }
            guard inflater.totalOut == header.stateSize else {
                throw StorageError(.damaged, file: path, offset: consumed, "the body decompresses to \(inflater.totalOut) state bytes, the header declares \(header.stateSize)")
            }
            if produced == 0 {
                done = true
                return nil
            }
        }
        out.removeLast(maxBytes - produced)
        return out
    }

    /// Calls `body` with each piece of the state, in order, to the end.
    public func forEachPiece(maxBytes: Int = 1 << 16, _ body: ([UInt8]) throws -> Void) throws {
        while let piece = try read(maxBytes: maxBytes) { try body(piece) }
    }
}
