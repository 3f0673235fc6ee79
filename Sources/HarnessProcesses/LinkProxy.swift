import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Harness
import Raft

/// The harness's socket for one destination node: every peer reaches the node through it.
/// Each accepted connection is relayed to the node's real socket frame by frame (SPEC's peer
/// frames: u32 length, version, kind, payload); the hello frame names the sender, and each
/// message frame is dropped when the link sender → destination is cut or lost, else
/// forwarded after its delay, in order.
final class LinkProxy: Sendable {
    let destination: String
    let listenPath: String
    let realPath: String
    private let channel: any Channel

    private init(destination: String, listenPath: String, realPath: String, channel: any Channel) {
        self.destination = destination
        self.listenPath = listenPath
        self.realPath = realPath
        self.channel = channel
    }

    static func start(destination: String, listenPath: String, realPath: String, network: NetworkState, group: any EventLoopGroup) async throws -> LinkProxy {
        unlink(listenPath)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ProxyConnection(destination: destination, realPath: realPath, network: network))
                }
            }
            .bind(unixDomainSocketPath: listenPath, cleanupExistingSocketFile: true).get()
        return LinkProxy(destination: destination, listenPath: listenPath, realPath: realPath, channel: channel)
    }

    func close() async {
        try? await channel.close()
        unlink(listenPath)
    }
}

/// One relayed connection, on one event loop (the outbound connection shares it).
private final class ProxyConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let destination: String
    let realPath: String
    let network: NetworkState
    var buffer = ByteBuffer()
    var sender: String?
    var outbound: (any Channel)?
    var closed = false
    /// Frames waiting for their time, in order; each time is at least the one before it.
    var waiting: [(at: NIODeadline, isMessage: Bool, frame: ByteBuffer)] = []
    var lastDeadline = NIODeadline.uptimeNanoseconds(0)
    var timer: Scheduled<Void>?

    static let maxFrame = 256 << 20

    init(destination: String, realPath: String, network: NetworkState) {
        self.destination = destination
        self.realPath = realPath
        self.network = network
    }

    func channelActive(context: ChannelHandlerContext) {
        let inbound = context.channel
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CloseOtherOnEnd(other: inbound))
                }
            }
            .connect(unixDomainSocketPath: realPath)
            .whenComplete { result in
                let me = bound.value
                switch result {
                case let .success(out):
                    if me.closed {
                        out.close(promise: nil)
                    } else {
                        me.outbound = out
                        me.pump()
                    }
                case .failure:
                    inbound.close(promise: nil)
                }
            }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        timer?.cancel()
        timer = nil
        waiting.removeAll()
        outbound?.close(promise: nil)
        outbound = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) {
            guard length >= 2, Int(length) <= Self.maxFrame else {
                context.close(promise: nil)
                return
            }
            guard buffer.readableBytes >= 4 + Int(length) else { break }
            let frame = buffer.readSlice(length: 4 + Int(length))!
            let kind = frame.getInteger(at: frame.readerIndex + 5, as: UInt8.self) ?? 0
            if kind == 1 {
                if sender == nil { sender = Self.helloSender(frame) }
                enqueue(frame, isMessage: false, delayMs: 0)
            } else if let delay = network.fate(from: sender, to: destination) {
                enqueue(frame, isMessage: true, delayMs: delay)
            }
        }
        buffer.discardReadBytes()
        pump()
    }

    /// The sender of a hello frame: after the 6 header bytes, "RAFT", u16, then strings
    /// (u32 length and bytes): cluster id, sender, receiver.
    static func helloSender(_ frame: ByteBuffer) -> String? {
        var offset = frame.readerIndex + 6 + 4 + 2
        guard let idLength = frame.getInteger(at: offset, as: UInt32.self) else { return nil }
        offset += 4 + Int(idLength)
        guard let senderLength = frame.getInteger(at: offset, as: UInt32.self) else { return nil }
        return frame.getString(at: offset + 4, length: Int(senderLength))
    }

    func enqueue(_ frame: ByteBuffer, isMessage: Bool, delayMs: Int) {
        var at = NIODeadline.now() + .milliseconds(Int64(delayMs))
        if at < lastDeadline { at = lastDeadline }
        lastDeadline = at
        waiting.append((at, isMessage, frame))
    }

    /// Sends every frame whose time has come, in order, then sets a timer for the next.
    func pump() {
        guard let out = outbound, !closed else { return }
        let now = NIODeadline.now()
        var wrote = false
        while let first = waiting.first, first.at <= now {
            waiting.removeFirst()
            // A link cut while the frame waited drops it too.
            if first.isMessage && network.isCut(from: sender, to: destination) { continue }
            out.write(first.frame, promise: nil)
            wrote = true
        }
        if wrote { out.flush() }
        guard timer == nil, let next = waiting.first else { return }
        let bound = NIOLoopBound(self, eventLoop: out.eventLoop)
        timer = out.eventLoop.scheduleTask(deadline: next.at) {
            let me = bound.value
            me.timer = nil
            me.pump()
        }
    }
}

/// On the outbound side: bytes from the node (there are none in this protocol) are dropped;
/// when it closes, the accepted side closes too, so the sender sees the link go down.
private final class CloseOtherOnEnd: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let other: any Channel

    init(other: any Channel) { self.other = other }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelInactive(context: ChannelHandlerContext) {
        other.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
