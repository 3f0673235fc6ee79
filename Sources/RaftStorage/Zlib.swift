import CZlib

/// Streaming compression into the zlib format (RFC 1950) by the system zlib. Input goes in
/// pieces; compressed output comes out through `emit` in pieces of at most `chunkSize`.
/// The state is never held whole.
final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let out: UnsafeMutableRawBufferPointer
    private var ended = false

    init(level: Int32, chunkSize: Int = 256 << 10) throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        out = .allocate(byteCount: chunkSize, alignment: 16)
        let r = czlib_deflate_init(stream, level)
        guard r == Z_OK else {
            stream.deallocate()
            out.deallocate()
            throw StorageError(.io, file: "zlib", "deflateInit failed: \(r)")
        }
    }

    deinit {
        if !ended { deflateEnd(stream) }
        stream.deallocate()
        out.deallocate()
    }

    /// Bytes taken in so far.
    var totalIn: UInt64 { UInt64(stream.pointee.total_in) }

    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let base = input.baseAddress, input.count > 0 else { return }
        var offset = 0
        while offset < input.count {
            let n = min(input.count - offset, Int(Int32.max))
            stream.pointee.next_in = UnsafeMutablePointer(mutating: (base + offset).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(n)
            repeat {
                try run(Z_NO_FLUSH, emit: emit)
            } while stream.pointee.avail_in > 0
            offset += n
        }
    }

    /// Ends the stream, emitting what remains.
    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        var r: Int32
        repeat { r = try run(Z_FINISH, emit: emit) } while r != Z_STREAM_END
        deflateEnd(stream)
        ended = true
    }

    @discardableResult
    private func run(_ flush: Int32, emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Int32 {
        stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(out.count)
        let r = deflate(stream, flush)
        guard r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR else {
            throw StorageError(.io, file: "zlib", "deflate failed: \(r)")
        }
        let produced = out.count - Int(stream.pointee.avail_out)
        if produced > 0 { try emit(UnsafeRawBufferPointer(rebasing: out[0..<produced])) }
        return r
    }
}

/// Streaming decompression of the zlib format by the system zlib.
final class Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private var ended = false
    /// Whether the compressed stream has ended (its checksum verified by zlib).
    private(set) var finished = false

    init() throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let r = czlib_inflate_init(stream)
        guard r == Z_OK else {
            stream.deallocate()
            throw StorageError(.io, file: "zlib", "inflateInit failed: \(r)")
        }
    }

    deinit {
        if !ended { inflateEnd(stream) }
        stream.deallocate()
    }

    /// Compressed bytes consumed so far.
    var totalIn: UInt64 { UInt64(stream.pointee.total_in) }
    /// Decompressed bytes produced so far.
    var totalOut: UInt64 { UInt64(stream.pointee.total_out) }
    /// Input given and not yet consumed.
    var pendingInput: Int { Int(stream.pointee.avail_in) }

    /// Gives the next compressed bytes; they must stay valid until consumed.
    func setInput(_ input: UnsafeRawBufferPointer) {
        stream.pointee.next_in = input.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self)) }
        stream.pointee.avail_in = uInt(input.count)
    }

    /// Decompresses into `out`; returns the bytes produced. Throws a message on corrupt data.
    func inflate(into out: UnsafeMutableRawBufferPointer) throws(InflateError) -> Int {
        guard !finished else { return 0 }
        stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(out.count)
        let r = CZlib.inflate(stream, Z_NO_FLUSH)
        let produced = out.count - Int(stream.pointee.avail_out)
        switch r {
        case Z_OK, Z_BUF_ERROR:
            return produced
        case Z_STREAM_END:
            finished = true
            inflateEnd(stream)
            ended = true
            return produced
        default:
            let msg = stream.pointee.msg.map { String(cString: $0) } ?? "code \(r)"
            throw InflateError(consumed: totalIn, detail: "corrupt compressed data: \(msg)")
        }
    }
}

struct InflateError: Error {
    var consumed: UInt64
    var detail: String
}
