import NIOCore
import Raft

/// One unit on a peer connection:
///
///     length u32   bytes that follow (version, kind, payload); at most the frame limit
///     version u8   `Frame.version`; a frame of another version closes the connection
///     kind u8      1 hello (the handshake, first frame of a connection), 2 message
///     payload      a `Hello` or a `Message` in their codecs
///
/// The length is checked against the limit as soon as its four bytes have arrived, before
/// anything is buffered for the frame, so a hostile length prefix costs nothing.
enum Frame {
    static let version: UInt8 = 1
    /// length u32 + version u8 + kind u8.
    static let headerSize = 6
    /// The smallest legal value of the length field: version and kind with an empty payload.
    static let minimumLength: UInt32 = 2
    /// Before the handshake a connection may send only this much in one frame.
    static let maximumHelloLength = 64 * 1024

    enum Kind: UInt8 {
        case hello = 1
        case message = 2
    }

    /// The frame of `kind` carrying `payload`.
    static func encode(_ kind: Kind, payload: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: headerSize + payload.count)
        buffer.writeInteger(UInt32(2 + payload.count))
        buffer.writeInteger(version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeBytes(payload)
        return buffer
    }

    /// The bytes of the length field for a payload of `payloadCount` bytes.
    static func length(ofPayload payloadCount: Int) -> Int { 2 + payloadCount }
}

/// Why a frame was refused.
enum FrameError: Error, Sendable, CustomStringConvertible {
    case tooLarge(length: UInt32, limit: Int)
    case tooSmall(length: UInt32)
    case badVersion(UInt8)
    case unknownKind(UInt8)

    var description: String {
        switch self {
        case let .tooLarge(length, limit): "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case let .tooSmall(length): "frame length \(length) is below the minimum of \(Frame.minimumLength)"
        case let .badVersion(v): "frame format version \(v), expected \(Frame.version)"
        case let .unknownKind(k): "unknown frame kind \(k)"
        }
    }
}

/// Cuts frames out of a byte stream. Pure, so that it is tested without sockets.
struct FrameParser {
    /// The largest length field accepted.
    var limit: Int

    /// The next whole frame's kind and payload, or nil when more bytes are needed. On a bad
    /// frame it throws as early as the bytes read so far allow (length, then version).
    func next(from buffer: inout ByteBuffer) throws(FrameError) -> (Frame.Kind, ByteBuffer)? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length >= Frame.minimumLength else { throw .tooSmall(length: length) }
        guard UInt64(length) <= UInt64(limit) else { throw .tooLarge(length: length, limit: limit) }
        if let version = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self), version != Frame.version {
            throw .badVersion(version)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        let rawKind = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self)!
        guard let kind = Frame.Kind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        let payload = buffer.readSlice(length: Int(length) - 2)!
        return (kind, payload)
    }
}

/// The first frame of every connection, sent by the side that dialled:
///
///     magic "RAFT", protocol version u16, cluster id string, sender string, receiver string
///
/// The receiver name lets the accepting side notice a peer that dialled the wrong address.
struct Hello: Sendable, Hashable {
    static let magic: [UInt8] = Array("RAFT".utf8)
    /// 2: the hello carries the sender's own listening address.
    static let protocolVersion: UInt16 = 2

    var clusterID: String
    var sender: NodeID
    var receiver: NodeID
    /// Where the sender listens: how the receiver answers a sender that no configuration
    /// it holds names yet (a leader added while it was cut off).
    var senderAddress: String

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 40 + clusterID.utf8.count + sender.utf8.count + receiver.utf8.count + senderAddress.utf8.count)
        for b in Self.magic { w.write(b) }
        w.write(UInt8(Self.protocolVersion >> 8))
        w.write(UInt8(Self.protocolVersion & 0xFF))
        w.write(clusterID)
        w.write(sender)
        w.write(receiver)
        w.write(senderAddress)
        return w.bytes
    }

    init(clusterID: String, sender: NodeID, receiver: NodeID, senderAddress: String) {
        self.clusterID = clusterID
        self.sender = sender
        self.receiver = receiver
        self.senderAddress = senderAddress
    }

    init(decoding bytes: [UInt8]) throws(DecodingError) {
        var r = ByteReader(bytes)
        var magic: [UInt8] = []
        for _ in 0..<Self.magic.count { magic.append(try r.readUInt8("magic")) }
        guard magic == Self.magic else { throw DecodingError(offset: 0, detail: "bad magic \(magic)") }
        let version = UInt16(try r.readUInt8("protocol version")) << 8 | UInt16(try r.readUInt8("protocol version"))
        guard version == Self.protocolVersion else {
            throw DecodingError(offset: 4, detail: "protocol version \(version), expected \(Self.protocolVersion)")
        }
        clusterID = try r.readString("cluster id")
        sender = try r.readString("sender")
        receiver = try r.readString("receiver")
        senderAddress = try r.readString("sender address")
        try r.expectEnd("hello")
    }
}
