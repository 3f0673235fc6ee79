// RaftTransport carries Raft messages between members over UNIX domain sockets, or TCP for
// clusters that span machines, with SwiftNIO.
//
// Files:
//   PeerTransport.swift      the public face: listen, address book, send, shutdown
//   PeerAddress.swift        socket path or tcp://host:port; the errors `start` throws
//   MessageCodec.swift       the binary form of every `Message`
//   Frame.swift              length-prefixed frames, their parser, the handshake (`Hello`)
//   InboundConnection.swift  an accepted connection: handshake, frames, delivery
//   OutboundPeer.swift       a dialled connection: bounded queue, reconnect with backoff
//   FileSystem.swift         the few POSIX calls for socket files
//
// Connections are one-directional. Each member dials each peer it sends to and writes only
// on that connection; it reads only on connections it accepted. So a message and its answer
// travel on two different sockets, and neither side ever has to decide which of two
// crossing dials wins: the simplest design that is correct, at the cost of two sockets per
// pair of members.

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Raft

/// One member's links to its peers.
///
/// It listens on the member's own address for connections from peers, each of which must
/// first send a hello with the same cluster id, its own name (which `isKnownPeer` must
/// accept) and this member's name; then it delivers their messages to `onMessage`. For its
/// own messages it dials each peer from the address book on demand and keeps one connection
/// per peer, behind a queue bounded in bytes.
///
/// Thread safety: a `Sendable` class rather than an actor, so that `send` is synchronous and
/// never waits: the little shared state (the address book, the peers, the listening socket)
/// sits behind one lock held only for dictionary operations; each connection lives on its own
/// NIO event loop. The callbacks are called on event loop threads, concurrently for
/// different connections and in order for one; they must return quickly (hand the message
/// to the node's own queue or actor) and must be thread-safe.
///
/// Errors that the node should record as an `error` event are reported through `onError`
/// with a `what` of `PeerTransport.badFrame`, `.refusedPeer`, `.badAddress` or `.sendFailed`
/// and a sentence of detail. None of them stops the transport.
public final class PeerTransport: Sendable {
    /// A frame over the limit, of another format version, or that does not decode; a message
    /// that does not match its connection's hello. The connection is closed.
    public static let badFrame = "peer-bad-frame"
    /// A connection refused at the handshake: another cluster, an unknown sender, a hello
    /// meant for another member, no hello in time. The connection is closed.
    public static let refusedPeer = "peer-refused"
    /// An address in the address book that cannot be used; that peer gets no messages.
    public static let badAddress = "peer-address"
    /// A message that cannot be sent: larger than the frame limit, or to a peer with no address.
    public static let sendFailed = "peer-send"

    /// The default frame limit: 32 MiB.
    public static let defaultMaxFrameBytes = 32 * 1024 * 1024

    public let name: NodeID
    public let clusterID: String
    /// The address to listen on, as given.
    public let listenAddress: String
    public let maxFrameBytes: Int
    /// Bytes that may wait for one peer before further messages to it are dropped.
    public let maxQueuedBytes: Int

    private let group: any EventLoopGroup
    private let onMessage: @Sendable (Message) -> Void
    private let onError: @Sendable (_ what: String, _ detail: String) -> Void
    private let isKnownPeer: @Sendable (NodeID) -> Bool
    private let onPeerAddress: @Sendable (NodeID, String) -> Void
    private let onPeerDisconnected: @Sendable (NodeID) -> Void
    /// The longest wait between two dials to a peer that is down (tests lengthen it).
    let maximumBackoff: TimeAmount
    private let state = NIOLockedValueBox(State())

    private struct State {
        enum Phase {
            case new, starting, running(any Channel), stopped
        }
        var phase: Phase = .new
        var boundAddress: String?
        var socketPath: String?
        var peers: [NodeID: OutboundPeer] = [:]
        var inbound: [ObjectIdentifier: any Channel] = [:]
        /// Peers already reported as having no address, so that the report is made once.
        var reportedUnreachable: Set<NodeID> = []
    }

    /// - Parameters:
    ///   - name: this member's name, sent in every hello and expected in every hello received.
    ///   - clusterID: only peers with the same cluster id are accepted.
    ///   - address: where to listen: a UNIX socket path (at most 103 bytes) or `tcp://host:port`
    ///     (port 0 picks a free port; see `localAddress`).
    ///   - group: the event loops for all sockets.
    ///   - maxFrameBytes: the largest frame accepted or sent (its length field, which counts
    ///     a 2-byte header and the encoded message).
    ///   - maxQueuedBytes: per peer; at least `maxFrameBytes` is used, so any legal frame fits.
    ///   - onMessage: each message received, in order per sending peer.
    ///   - onError: `(what, detail)` of each error worth recording; see the type's doc.
    ///   - isKnownPeer: whether a sender named in a hello may connect.
    ///   - onPeerAddress: a peer with no address here connected, saying where it listens
    ///     (the owner may add it to the address book with `setPeers`).
    ///   - onPeerDisconnected: a peer's connection to this member closed from its side: its
    ///     process ended, or it closed the socket (a network that drops packets closes
    ///     nothing; a paused process keeps its sockets open).
    public convenience init(
        name: NodeID,
        clusterID: String,
        listen address: String,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maxFrameBytes: Int = PeerTransport.defaultMaxFrameBytes,
        maxQueuedBytes: Int = PeerTransport.defaultMaxFrameBytes,
        onMessage: @escaping @Sendable (Message) -> Void,
        onError: @escaping @Sendable (_ what: String, _ detail: String) -> Void,
        isKnownPeer: @escaping @Sendable (NodeID) -> Bool,
        onPeerAddress: @escaping @Sendable (NodeID, _ address: String) -> Void = { _, _ in },
        onPeerDisconnected: @escaping @Sendable (NodeID) -> Void = { _ in }
    ) {
        self.init(
            name: name, clusterID: clusterID, listen: address, group: group, maxFrameBytes: maxFrameBytes, maxQueuedBytes: maxQueuedBytes,
            maximumBackoff: OutboundPeer.defaultMaximumBackoff, onMessage: onMessage, onError: onError, isKnownPeer: isKnownPeer,
            onPeerAddress: onPeerAddress, onPeerDisconnected: onPeerDisconnected)
    }

    init(
        name: NodeID, clusterID: String, listen address: String, group: any EventLoopGroup, maxFrameBytes: Int, maxQueuedBytes: Int,
        maximumBackoff: TimeAmount, onMessage: @escaping @Sendable (Message) -> Void,
        onError: @escaping @Sendable (_ what: String, _ detail: String) -> Void, isKnownPeer: @escaping @Sendable (NodeID) -> Bool,
        onPeerAddress: @escaping @Sendable (NodeID, _ address: String) -> Void = { _, _ in },
        onPeerDisconnected: @escaping @Sendable (NodeID) -> Void = { _ in }
    ) {
        self.onPeerAddress = onPeerAddress
        self.onPeerDisconnected = onPeerDisconnected
        self.maximumBackoff = maximumBackoff
        self.name = name
        self.clusterID = clusterID
        self.listenAddress = address
        self.group = group
        self.maxFrameBytes = max(maxFrameBytes, 64)
        self.maxQueuedBytes = max(maxQueuedBytes, self.maxFrameBytes + Frame.headerSize)
        self.onMessage = onMessage
        self.onError = onError
        self.isKnownPeer = isKnownPeer
    }

    /// The address actually listened on once started (`tcp://127.0.0.1:54321` for port 0).
    public var localAddress: String? { state.withLockedValue { $0.boundAddress } }

    /// Binds the listening socket. For a UNIX socket path, a stale socket file left by a
    /// process that died is removed first (one that a live process listens on is not), and
    /// the new socket file is made readable and writable by its owner only (mode 0600).
    public func start() async throws {
        try state.withLockedValue { s in
            guard case .new = s.phase else { throw PeerTransportError.notStartable("already started or shut down") }
            s.phase = .starting
        }
        do {
            let channel = try await bind()
            let keep = state.withLockedValue { s -> Bool in
                guard case .starting = s.phase else { return false }
                s.phase = .running(channel)
                return true
            }
            if !keep {
                // Shut down while binding: undo the bind.
                try? await channel.close()
                if case let .unix(path) = try? PeerAddress(parsing: listenAddress) { FileSystem.remove(path) }
            }
        } catch {
            state.withLockedValue { s in
                if case .starting = s.phase { s.phase = .new }
            }
            throw error
        }
    }

    private func bind() async throws -> any Channel {
        let address = try PeerAddress(parsing: listenAddress)
        var inbound = InboundSettings(
            name: name, clusterID: clusterID, maxFrameBytes: maxFrameBytes, listenAddress: listenAddress,
            onMessage: onMessage, onError: onError, isKnownPeer: isKnownPeer)
        inbound.onPeerConnected = { [self] peer, address in
            if let known = self.state.withLockedValue({ $0.peers[peer] }) {
                known.peerIsUp()
            } else {
                self.onPeerAddress(peer, address)
            }
        }
        inbound.onPeerDisconnected = onPeerDisconnected
        let settings = inbound
        let maxBuffer = maxFrameBytes + Frame.headerSize + 64 * 1024
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                self.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(InboundConnection(settings: settings), maximumBufferSize: maxBuffer),
                        CloseOnError())
                }
            }
        switch address {
        case let .unix(path):
            try await removeStaleSocket(path)
            let channel: any Channel
            do {
                channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
            } catch {
                throw PeerTransportError.bindFailed(path, "\(error)")
            }
            do {
                try FileSystem.restrictToOwner(path)
            } catch {
                try? await channel.close()
                throw PeerTransportError.bindFailed(path, "\(error)")
            }
            state.withLockedValue { s in
                s.socketPath = path
                s.boundAddress = path
            }
            return channel
        case let .tcp(host, port):
            let channel: any Channel
            do {
                channel = try await bootstrap.bind(host: host, port: port).get()
            } catch {
                throw PeerTransportError.bindFailed(listenAddress, "\(error)")
            }
            let actualPort = channel.localAddress?.port ?? port
            state.withLockedValue { $0.boundAddress = PeerAddress.tcp(host: host, port: actualPort).description }
            return channel
        }
    }

    /// A socket file nobody listens on is what a killed process leaves: remove it. Refuse to
    /// remove anything else.
    private func removeStaleSocket(_ path: String) async throws {
        switch FileSystem.kind(of: path) {
        case .missing:
            return
        case .other:
            throw PeerTransportError.notASocket(path)
        case .socket:
            let live = try? await ClientBootstrap(group: group).connectTimeout(.seconds(1))
                .connect(unixDomainSocketPath: path).get()
            if let live {
                try? await live.close()
                throw PeerTransportError.addressInUse(path)
            }
            FileSystem.remove(path)
        }
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLockedValue { s -> Bool in
            // Starting counts: the socket accepts as soon as it is bound, before start()
            // has resumed to say running, and a peer's first frames may already be on the way.
            switch s.phase {
            case .starting, .running: break
            default: return false
            }
            s.inbound[id] = channel
            return true
        }
        if !accepted {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = self.state.withLockedValue { $0.inbound.removeValue(forKey: id) }
        }
    }

    /// Sets the address of every peer this member sends to (its own entry, if any, is
    /// ignored). A peer whose address changed is redialled; a peer no longer listed is
    /// disconnected and its queue dropped. An unusable address is reported (`badAddress`).
    public func setPeers(_ addresses: [NodeID: String]) {
        var parsed: [NodeID: PeerAddress] = [:]
        for (id, text) in addresses where id != name {
            do {
                parsed[id] = try PeerAddress(parsing: text)
            } catch {
                onError(Self.badAddress, "address of \(id): \(error)")
            }
        }
        let hello = { (id: NodeID) in Hello(clusterID: self.clusterID, sender: self.name, receiver: id, senderAddress: self.listenAddress) }
        let (retired, added) = state.withLockedValue { s -> ([OutboundPeer], [OutboundPeer]) in
            if case .stopped = s.phase { return ([], []) }
            var retired: [OutboundPeer] = []
            var added: [OutboundPeer] = []
            for (id, peer) in s.peers where parsed[id] != peer.address {
                retired.append(peer)
                s.peers[id] = nil
            }
            for (id, address) in parsed.sorted(by: { $0.key < $1.key }) where s.peers[id] == nil {
                let peer = OutboundPeer(
                    id: id, address: address, hello: hello(id), eventLoop: group.next(), maxQueuedBytes: maxQueuedBytes,
                    maximumBackoff: maximumBackoff)
                s.peers[id] = peer
                added.append(peer)
                s.reportedUnreachable.remove(id)
            }
            return (retired, added)
        }
        for peer in retired { _ = peer.close() }
        // Hello to each new peer now: one that was dialling this member in vain redials it.
        for peer in added { peer.dialNow() }
    }

    /// Queues `message` for `message.to` and returns at once. The message is dropped when
    /// that peer's queue is full (Raft retries what matters), when the peer has no address
    /// (reported once per peer), or when it is larger than the frame limit (reported).
    public func send(_ message: Message) {
        let lookup = state.withLockedValue { s -> (OutboundPeer?, report: Bool) in
            if case .stopped = s.phase { return (nil, false) }
            if let peer = s.peers[message.to] { return (peer, false) }
            return (nil, s.reportedUnreachable.insert(message.to).inserted)
        }
        guard let peer = lookup.0 else {
            if lookup.report, message.to != name {
                onError(Self.sendFailed, "no address for \(message.to); messages to it are dropped")
            }
            return
        }
        let payload = message.encoded()
        guard Frame.length(ofPayload: payload.count) <= maxFrameBytes else {
            onError(
                Self.sendFailed,
                "\(message.body) to \(message.to) is \(payload.count) bytes, over the frame limit of \(maxFrameBytes); dropped")
            return
        }
        peer.enqueue(Frame.encode(.message, payload: payload, allocator: ByteBufferAllocator()), urgent: Self.isUrgent(message))
    }

    /// Whether `message` goes ahead of queued log entries and snapshot chunks: everything but
    /// those two (AppendEntries keep their order among themselves, empty ones included).
    static func isUrgent(_ message: Message) -> Bool {
        switch message.body {
        case .appendEntries, .snapshotRecoveryRequest: return false
        default: return true
        }
    }

    /// Bytes waiting to be sent to `peer`, frames dropped for it because its queue was full,
    /// and frames dropped because no connection to it could be made or its connection ended.
    public func queueStatus(of peer: NodeID) -> (queuedBytes: Int, droppedFrames: Int, unreachableFrames: Int)? {
        guard let p = state.withLockedValue({ $0.peers[peer] }) else { return nil }
        return (p.queuedBytes, p.droppedFrames, p.unreachableFrames)
    }

    /// Closes the listening socket (removing its socket file), every connection and every
    /// queue. Messages sent afterwards are dropped. The event loop group is the caller's.
    public func shutdown() async {
        let (server, peers, inbound, socketPath) = state.withLockedValue { s in
            var server: (any Channel)?
            if case let .running(channel) = s.phase { server = channel }
            s.phase = .stopped
            let taken = (server, Array(s.peers.values), Array(s.inbound.values), s.socketPath)
            s.peers = [:]
            s.inbound = [:]
            s.socketPath = nil
            return taken
        }
        if let server { try? await server.close() }
        for peer in peers { try? await peer.close().get() }
        for channel in inbound { try? await channel.close() }
        if let socketPath, FileSystem.kind(of: socketPath) == .socket { FileSystem.remove(socketPath) }
    }
}
