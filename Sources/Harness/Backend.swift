import Raft
import RaftNodeWire

/// What a node says of itself (the client protocol's `status`).
public struct NodeStatus: Sendable, Hashable {
    public var name: String
    public var role: String
    public var term: UInt64
    public var leader: String?
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var members: [String]
    public var learners: [String]
    /// The index of the configuration entry in force (committed when ≤ `commitIndex`).
    public var configIndex: UInt64
    public var digest: String
    public var snapshotting: Bool

    public init(
        name: String, role: String, term: UInt64, leader: String?, commitIndex: UInt64, appliedIndex: UInt64,
        members: [String], learners: [String], configIndex: UInt64 = 0, digest: String, snapshotting: Bool
    ) {
        self.configIndex = configIndex
        self.name = name
        self.role = role
        self.term = term
        self.leader = leader
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.members = members
        self.learners = learners
        self.digest = digest
        self.snapshotting = snapshotting
    }
}

/// The answer to a client request, in the terms of SPEC section 5: acknowledged, refused
/// (not proposed: `not-leader`, `busy`, `config-change-in-progress`, `shutting-down`, or not
/// sent at all), unknown (`timeout`, `leadership-lost`, or no answer: it may still commit),
/// or failed (`bad-request`, an unreadable answer: retrying would not help). `leader` is the
/// node the answer names as leader, when it does.
public enum WriteOutcome: Sendable, Hashable {
    case ok(index: UInt64, term: UInt64)
    case refused(String, leader: String?)
    case unknown(String, leader: String?)
    case failed(String)

    /// The outcome of an answer with this `error` (nil when none was read: `why` says why).
    public static func of(error: String, leader: String?) -> WriteOutcome {
        switch error {
        case "not-leader", "busy", "config-change-in-progress", "shutting-down": .refused(error, leader: leader)
        case "timeout", "leadership-lost": .unknown(error, leader: leader)
        default: .failed(error)
        }
    }

    public var isUnknown: Bool { if case .unknown = self { true } else { false } }
}

/// A request that was not acknowledged, with what its answer means.
public struct RequestFailure: Error, Sendable, CustomStringConvertible {
    public var outcome: WriteOutcome
    public var text: String
    public init(_ outcome: WriteOutcome, _ text: String) {
        self.outcome = outcome
        self.text = text
    }
    public var description: String { text }
}

/// How the engine acts on a cluster: processes (the product) or, later, the seeded
/// simulator. Every method may throw a message that fails the step.
public protocol ClusterBackend: AnyObject, Sendable {
    /// Starts a fresh cluster whose first configuration is exactly `names`.
    func createCluster(_ names: [String], settings: NodeSettings) async throws
    /// Starts a stopped node on its existing data.
    func start(_ name: String) async throws
    /// Starts `name` with empty data, waiting to be added; returns its peer address.
    func startJoining(_ name: String, settings: NodeSettings) async throws -> String
    /// SIGTERM, then waits for the process to exit.
    func stop(_ name: String) async throws
    func kill(_ name: String) async throws
    func pause(_ name: String) async throws
    func resume(_ name: String) async throws
    /// Deletes a stopped node's data.
    func wipe(_ name: String) async throws
    /// Cuts the links between the groups; nil heals. Every node of `all` not in a group is
    /// in one more group together.
    func partition(_ groups: [[String]]?) async throws
    func setLoss(percent: Double, delayMs: ClosedRange<Int>?) async throws

    /// Names of the nodes whose processes run (paused ones included).
    var running: [String] { get }
    var paused: Set<String> { get }
    /// Every node the back end has started.
    var known: [String] { get }

    func status(_ name: String) async -> NodeStatus?
    func put(_ name: String, key: String, value: String, timeoutMs: Int) async -> WriteOutcome
    /// A client request answered `{"ok":true,...}` (snapshot, add, remove, get); any other
    /// answer, or none, throws a `RequestFailure`.
    func request(_ name: String, _ json: String, timeoutMs: Int) async throws(RequestFailure) -> [String: String]
    /// The events that `name` wrote since the scenario began (events.jsonl lines).
    func events(_ name: String) -> [String]

    /// Stops every process it started.
    func shutdown() async
}
