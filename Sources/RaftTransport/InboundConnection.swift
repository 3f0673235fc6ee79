import NIOCore
import Raft

/// What an accepted connection needs to know of its transport.
struct InboundSettings: Sendable {
    var name: NodeID
    var clusterID: String
    var maxFrameBytes: Int
    var listenAddress: String
    var onMessage: @Sendable (Message) -> Void
    var onError: @Sendable (_ what: String, _ detail: String) -> Void
    var isKnownPeer: @Sendable (NodeID) -> Bool
    /// A peer's hello was accepted: it runs and can be reached, at the address it gives.
    var onPeerConnected: @Sendable (NodeID, _ address: String) -> Void = { _, _ in }
    /// A peer's connection, hello accepted, closed from its side (its process ended, or it
    /// closed the socket): not one this side refused.
    var onPeerDisconnected: @Sendable (NodeID) -> Void = { _ in }
    /// How long a new connection may take to send its hello.
    var helloTimeout: TimeAmount = .seconds(10)
}

/// The whole receiving side of one accepted connection: it cuts frames, checks the hello,
/// then decodes messages and hands them to `onMessage`, in order. Anything wrong (a frame
/// over the limit, another format version, bytes that do not decode, a refused hello) is
/// reported through `onError` and closes this connection only.
///
/// Until the hello is accepted a frame may be at most `Frame.maximumHelloLength` bytes, so
/// an unidentified connection cannot make the node buffer a large frame.
struct InboundConnection: ByteToMessageDecoder {
    typealias InboundOut = Never

    let settings: InboundSettings
    private var parser: FrameParser
    /// The sender, once its hello is accepted.
    private var peer: NodeID?
    /// Set when the connection has been refused: every later byte is dropped.
    private var closing = false
    private var helloDeadline: Scheduled<Void>?

    init(settings: InboundSettings) {
        self.settings = settings
        self.parser = FrameParser(limit: min(Frame.maximumHelloLength, settings.maxFrameBytes))
    }

    mutating func decoderAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let settings = self.settings
        helloDeadline = context.eventLoop.scheduleTask(in: settings.helloTimeout) {
            settings.onError(
                PeerTransport.refusedPeer,
                "connection to \(settings.listenAddress) sent no hello within \(settings.helloTimeout.nanoseconds / 1_000_000) ms; closed")
            channel.close(promise: nil)
        }
    }

    mutating func decoderRemoved(context: ChannelHandlerContext) {
        helloDeadline?.cancel()
        helloDeadline = nil
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if closing {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        do {
            guard let (kind, payload) = try parser.next(from: &buffer) else { return .needMoreData }
            try handle(kind, payload)
            return .continue
        } catch let error as FrameError {
            refuse(context, PeerTransport.badFrame, error.description, buffer: &buffer)
        } catch let refusal as Refusal {
            refuse(context, refusal.what, refusal.detail, buffer: &buffer)
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A peer that dies mid-frame is ordinary; a connection that closes before it has said
        // who it is, after sending something, is worth a line.
        if !closing && peer == nil && buffer.readableBytes > 0 {
            settings.onError(
                PeerTransport.badFrame,
                "\(source): closed after \(buffer.readableBytes) bytes without a complete hello")
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        if let peer, !closing {
            closing = true
            settings.onPeerDisconnected(peer)
        }
        return .needMoreData
    }

    private var source: String {
        if let peer { "connection from \(peer) to \(settings.listenAddress)" } else { "unidentified connection to \(settings.listenAddress)" }
    }

    private struct Refusal: Error {
        var what: String
        var detail: String
    }

    private mutating func handle(_ kind: Frame.Kind, _ payload: ByteBuffer) throws {
        let bytes = Array(payload.readableBytesView)
        guard let peer else {
            guard kind == .hello else {
                throw Refusal(what: PeerTransport.refusedPeer, detail: "\(source): first frame is not a hello")
            }
            try accept(helloBytes: bytes)
            return
        }
        guard kind == .message else {
            throw Refusal(what: PeerTransport.badFrame, detail: "\(source): a second hello")
        }
        let message: Message
        do {
            message = try Message(decoding: bytes)
        } catch {
            throw Refusal(what: PeerTransport.badFrame, detail: "\(source): undecodable message: \(error)")
        }
        guard message.from == peer, message.to == settings.name else {
            throw Refusal(
                what: PeerTransport.badFrame,
                detail: "\(source): message from \(message.from) to \(message.to) on a connection from \(peer) to \(settings.name)")
        }
        settings.onMessage(message)
    }

    private mutating func accept(helloBytes: [UInt8]) throws {
        let hello: Hello
        do {
            hello = try Hello(decoding: helloBytes)
        } catch {
            throw Refusal(what: PeerTransport.refusedPeer, detail: "\(source): bad hello: \(error)")
        }
        guard hello.clusterID == settings.clusterID else {
            throw Refusal(
                what: PeerTransport.refusedPeer,
                detail: "\(source): \(hello.sender) belongs to cluster '\(hello.clusterID)', not '\(settings.clusterID)'")
        }
        guard hello.receiver == settings.name else {
            throw Refusal(
                what: PeerTransport.refusedPeer,
                detail: "\(source): \(hello.sender) dialled \(hello.receiver), but this is \(settings.name)")
        }
        guard hello.sender != settings.name, settings.isKnownPeer(hello.sender) else {
            throw Refusal(what: PeerTransport.refusedPeer, detail: "\(source): unknown sender '\(hello.sender)'")
        }
        peer = hello.sender
        parser.limit = settings.maxFrameBytes
        helloDeadline?.cancel()
        helloDeadline = nil
        settings.onPeerConnected(hello.sender, hello.senderAddress)
    }

    private mutating func refuse(_ context: ChannelHandlerContext, _ what: String, _ detail: String, buffer: inout ByteBuffer) {
        closing = true
        helloDeadline?.cancel()
        helloDeadline = nil
        buffer.moveReaderIndex(to: buffer.writerIndex)
        settings.onError(what, detail.hasPrefix(source) ? detail : "\(source): \(detail)")
        context.close(promise: nil)
    }
}

/// Last in an accepted connection's pipeline: an error that reaches it (the socket failed,
/// say) closes the connection, which is all a peer connection can do about it.
final class CloseOnError: ChannelInboundHandler {
    typealias InboundIn = Never

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
