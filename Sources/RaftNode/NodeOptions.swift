import Raft
import RaftNodeWire

/// What a node is started with.
public struct NodeOptions: Sendable {
    public var name: NodeID
    public var dataDir: String
    /// Where peers reach this node: a UNIX socket path or `tcp://host:port`.
    public var peerAddress: String
    /// The client socket (SPEC section 5); `client.sock` in the data dir by default.
    public var clientSocket: String
    public var clusterID: String = "raft-testbed"
    /// The first configuration of a new cluster (name -> peer address), used when the data
    /// dir is empty and `join` is off. With `join`, only where to reach the current members.
    public var initialMembers: [NodeID: String] = [:]
    /// Start with no configuration and wait to be added.
    public var join = false
    public var settings = Settings()
    /// Milliseconds of one tick of the core's clock.
    public var tickMs: Int = 10
    /// A client request not answered in this many milliseconds is answered `timeout`.
    public var requestTimeoutMs: Int = 10_000
    /// Exit when standard input closes (a supervising parent died).
    public var exitOnStdinClose = false
    /// Keep what compactions free and newer snapshots supersede in `archive/`, and write
    /// `apply` events: the whole history, for the harness's checker (SPEC sections 3, 4).
    public var keepHistory = false

    public init(name: NodeID, dataDir: String, peerAddress: String, clientSocket: String) {
        self.name = name
        self.dataDir = dataDir
        self.peerAddress = peerAddress
        self.clientSocket = clientSocket
    }

    /// Takes the core's settings, the tick and the request timeout from `s` (the table of
    /// `NodeSettings`, which the flags and the scenarios' `set` share).
    public mutating func apply(_ s: NodeSettings) {
        settings = s.core
        tickMs = s.tickMs
        requestTimeoutMs = s.requestTimeoutMs
    }
}
