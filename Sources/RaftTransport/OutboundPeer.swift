import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Raft
import RaftNodeWire

/// The sending side towards one peer: two queues bounded in bytes, and at most one
/// connection, dialled when there is something to send and redialled with exponential backoff
/// (cut short when the peer dials this member: it runs again).
///
/// What is queued when a dial fails or the connection ends is dropped, not kept for the next
/// connection: it was meant for a process that is gone, and the next one (restarted, or
/// wiped and added again under the same name) must not get its stale entries, chunks or
/// removal notices. Raft sends again what still matters.
///
/// Bulk frames (log entries, snapshot chunks) wait in one queue, everything else (heartbeats,
/// votes, answers) in an urgent queue that goes first: a follower that is behind and has
/// megabytes of entries on their way still hears a heartbeat within a socket buffer's worth
/// of bytes, rather than after all of them (it would call an election meanwhile). Frames of
/// one queue keep their order.
///
/// `enqueue` may be called from any thread and never waits: it takes a lock for as long as an
/// append takes, and drops the frame when its queue is full. Everything else (the connection,
/// the backoff, moving frames from the queue into the socket while the socket can take them)
/// runs on this peer's own event loop, so a peer that is slow or gone holds up nobody else.
final class OutboundPeer: Sendable {
    let id: NodeID
    let address: PeerAddress
    let eventLoop: any EventLoop
    private let hello: ByteBuffer
    private let maxQueuedBytes: Int
    private let queue: NIOLockedValueBox<SendQueue>
    private let loop: NIOLoopBoundBox<LoopState>

    static let initialBackoff: TimeAmount = .milliseconds(20)
    /// At most this long between dials to a peer that is down: a restarted member hears from
    /// its leader within it (or at once, when it dials the leader first).
    static let defaultMaximumBackoff: TimeAmount = .milliseconds(200)
    let maximumBackoff: TimeAmount
    /// A connection that lived at least this long resets the backoff when it closes.
    static let healthyConnection: TimeAmount = .seconds(1)

    private struct SendQueue {
        var frames = CircularBuffer<ByteBuffer>()
        var urgent = CircularBuffer<ByteBuffer>()
        var bytes = 0
        var urgentBytes = 0
        var kickScheduled = false
        var dropped = 0
        /// Frames dropped because no connection could be made, or it ended.
        var unreachable = 0
        var closed = false
    }

    private enum Connection {
        case idle
        case connecting
        case connected(any Channel, since: NIODeadline)
        case waiting(Scheduled<Void>)
    }

    private struct LoopState {
        var connection: Connection = .idle
        var backoff = OutboundPeer.initialBackoff
        var closed = false
    }

    init(id: NodeID, address: PeerAddress, hello: Hello, eventLoop: any EventLoop, maxQueuedBytes: Int, maximumBackoff: TimeAmount = defaultMaximumBackoff) {
        self.id = id
        self.maximumBackoff = maximumBackoff
        self.address = address
        self.eventLoop = eventLoop
        self.hello = Frame.encode(.hello, payload: hello.encoded(), allocator: ByteBufferAllocator())
        self.maxQueuedBytes = maxQueuedBytes
        self.queue = NIOLockedValueBox(SendQueue())
        self.loop = NIOLoopBoundBox.makeBoxSendingValue(LoopState(), eventLoop: eventLoop)
    }

    /// Queues a frame, ahead of every bulk frame when `urgent`; false when it was dropped
    /// because its queue is full (or closed). Each queue holds up to `maxQueuedBytes`.
    @discardableResult
    func enqueue(_ frame: ByteBuffer, urgent: Bool = false) -> Bool {
        let (accepted, kick) = queue.withLockedValue { q -> (Bool, Bool) in
            let queued = urgent ? q.urgentBytes : q.bytes
            guard !q.closed, queued + frame.readableBytes <= maxQueuedBytes else {
                q.dropped += 1
                return (false, false)
            }
            if urgent {
                q.urgent.append(frame)
                q.urgentBytes += frame.readableBytes
            } else {
                q.frames.append(frame)
                q.bytes += frame.readableBytes
            }
            let kick = !q.kickScheduled
            q.kickScheduled = true
            return (true, kick)
        }
        if kick { eventLoop.execute { self.kick() } }
        return accepted
    }

    /// Bytes waiting in the queues (not yet handed to the socket).
    var queuedBytes: Int { queue.withLockedValue { $0.bytes + $0.urgentBytes } }

    /// Frames dropped so far because the queue was full.
    var droppedFrames: Int { queue.withLockedValue { $0.dropped } }

    /// Frames dropped so far because the peer could not be reached.
    var unreachableFrames: Int { queue.withLockedValue { $0.unreachable } }

    /// Drops what is queued: the peer it was meant for is gone.
    private func dropQueued() {
        queue.withLockedValue { q in
            q.unreachable += q.frames.count + q.urgent.count
            q.frames.removeAll()
            q.urgent.removeAll()
            q.bytes = 0
            q.urgentBytes = 0
        }
    }

    /// Dials now if there is no connection yet, with nothing to send: a member that starts
    /// says hello to each peer at once, so that a leader whose dials to it failed while it
    /// was down (and now waits out a backoff) redials it at once (`peerIsUp`).
    func dialNow() {
        eventLoop.execute {
            guard !self.loop.value.closed, case .idle = self.loop.value.connection else { return }
            self.connect()
        }
    }

    /// The peer dialled this member (its hello was accepted): it runs, so a dial that waits
    /// out a backoff is made at the next message instead.
    func peerIsUp() {
        eventLoop.execute {
            guard !self.loop.value.closed, case let .waiting(task) = self.loop.value.connection else { return }
            task.cancel()
            self.loop.value.backoff = Self.initialBackoff
            self.loop.value.connection = .idle
            self.kick()
        }
    }

    /// Closes the connection and forgets what is queued; completes once the socket is closed.
    func close() -> EventLoopFuture<Void> {
        queue.withLockedValue { q in
            q.closed = true
            q.frames.removeAll()
            q.urgent.removeAll()
            q.bytes = 0
            q.urgentBytes = 0
        }
        return eventLoop.flatSubmit {
            self.loop.value.closed = true
            switch self.loop.value.connection {
            case let .connected(channel, _):
                self.loop.value.connection = .idle
                return channel.close().recover { _ in }
            case let .waiting(task):
                task.cancel()
                self.loop.value.connection = .idle
            case .idle, .connecting:
                break
            }
            return self.eventLoop.makeSucceededVoidFuture()
        }
    }

    // MARK: On the event loop

    /// Moves what it can from the queue into the socket, dialling first if there is none.
    private func kick() {
        queue.withLockedValue { $0.kickScheduled = false }
        guard !loop.value.closed else { return }
        switch loop.value.connection {
        case .idle:
            if queuedBytes > 0 { connect() }
        case .connecting, .waiting:
            break
        case let .connected(channel, _):
            drain(channel)
        }
    }

    private func drain(_ channel: any Channel) {
        var wrote = false
        while channel.isWritable, let frame = popFrame() {
            channel.write(frame, promise: nil)
            wrote = true
        }
        if wrote { channel.flush() }
    }

    private func popFrame() -> ByteBuffer? {
        queue.withLockedValue { q in
            if let frame = q.urgent.popFirst() {
                q.urgentBytes -= frame.readableBytes
                return frame
            }
            guard let frame = q.frames.popFirst() else { return nil }
            q.bytes -= frame.readableBytes
            return frame
        }
    }

    private func connect() {
        loop.value.connection = .connecting
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(2))
            .channelOption(.writeBufferWaterMark, value: .init(low: 512 * 1024, high: 1024 * 1024))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(OutboundConnectionHandler(peer: self))
                }
            }
        let future: EventLoopFuture<any Channel>
        switch address {
        case let .unix(path): future = bootstrap.connect(unixDomainSocketPath: path)
        case let .tcp(host, port): future = bootstrap.connect(host: host, port: port)
        }
        future.hop(to: eventLoop).whenComplete { result in
            switch result {
            case let .success(channel):
                guard !self.loop.value.closed else {
                    channel.close(promise: nil)
                    return
                }
                guard channel.isActive else {
                    // Closed before we got here (its channelInactive found us still connecting).
                    self.retryLater(grow: true)
                    return
                }
                self.loop.value.connection = .connected(channel, since: .now())
                channel.write(self.hello, promise: nil)
                self.drain(channel)
                channel.flush()
            case .failure:
                self.retryLater(grow: true)
            }
        }
    }

    private func retryLater(grow: Bool) {
        guard !loop.value.closed else {
            loop.value.connection = .idle
            return
        }
        dropQueued()
        let delay = loop.value.backoff
        if grow {
            loop.value.backoff = min(delay * 2, maximumBackoff)
        }
        let task = eventLoop.scheduleTask(in: delay) {
            self.loop.value.connection = .idle
            self.kick()
        }
        loop.value.connection = .waiting(task)
    }

    /// The socket can take more (or can no longer): carry on draining.
    fileprivate func writabilityChanged(_ channel: any Channel) {
        guard case let .connected(current, _) = loop.value.connection, current === channel else { return }
        if channel.isWritable { drain(channel) }
    }

    fileprivate func closed(_ channel: any Channel) {
        guard case let .connected(current, since) = loop.value.connection, current === channel else { return }
        if FaultSwitch.isOn(.stuckPeerConnection) {
            // The planted fault: never dial this peer again; what is sent to it is dropped.
            loop.value.closed = true
            loop.value.connection = .idle
            queue.withLockedValue { $0.closed = true }
            dropQueued()
            return
        }
        // A connection that lived long was healthy: the next dial waits the least. One closed
        // at once (refused by the peer, say) backs off further, so a refusal is not hammered.
        let healthy = NIODeadline.now() - since >= Self.healthyConnection
        if healthy { loop.value.backoff = Self.initialBackoff }
        retryLater(grow: !healthy)
    }
}

/// Watches one outbound connection for writability and for its end. The peer sends nothing
/// back on it; whatever arrives is dropped.
private final class OutboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let peer: OutboundPeer

    init(peer: OutboundPeer) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        peer.writabilityChanged(context.channel)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.closed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
