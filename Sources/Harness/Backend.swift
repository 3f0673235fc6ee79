import Raft
import RaftNodeHost
import RaftNodeWire

/// What a node says of itself (the client protocol's `status`).
public typealias NodeStatus = StatusReport

/// The time of a run: wall time against processes, simulated time in the simulator. The
/// engine and the background clients read and wait on it, never on a clock of their own.
public protocol RunClock: Sendable {
    /// Milliseconds since the run began.
    var nowMs: Int { get }
    /// Microseconds since the UNIX epoch, for the run's timestamps.
    var unixMicros: Int64 { get }
    func sleep(ms: Int) async
    /// Where the tasks the engine starts run (nil: the global executor).
    var executor: (any TaskExecutor)? { get }
}

/// Wall time, for runs against processes.
public struct WallClock: RunClock {
    let start = ContinuousClock.now
    public init() {}
    public var nowMs: Int { start.duration(to: .now).milliseconds }
    public var unixMicros: Int64 { wallClock() }
    public func sleep(ms: Int) async { try? await Task.sleep(for: .milliseconds(max(0, ms))) }
    public var executor: (any TaskExecutor)? { nil }
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

    /// The outcome of an answer with this `error`.
    public static func of(error: ClientError, leader: String?) -> WriteOutcome {
        switch error {
        case .notLeader, .busy, .configChangeInProgress, .shuttingDown: .refused(error.rawValue, leader: leader)
        case .timeout, .leadershipLost: .unknown(error.rawValue, leader: leader)
        case .badRequest: .failed(error.rawValue)
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
    /// Cuts the links between the groups, replacing every cut in place; nil heals. Every
    /// node of `all` not in a group is in one more group together.
    func partition(_ groups: [[String]]?) async throws
    /// Cuts every link to and from `name`, adding to the cuts in place.
    func isolate(_ name: String) async throws
    func setLoss(percent: Double, delayMs: ClosedRange<Int>?) async throws

    /// Names of the nodes whose processes run (paused ones included).
    var running: [String] { get }
    var paused: Set<String> { get }
    /// Every node the back end has started.
    var known: [String] { get }

    /// A power cut for one node: it dies, and what it wrote but did not fsync is lost.
    /// Returns a line for each file that lost bytes.
    func crash(_ name: String) async throws -> [String]

    /// The run's time.
    var clock: any RunClock { get }

    func status(_ name: String) async -> NodeStatus?
    func put(_ name: String, key: String, value: String, timeoutMs: Int) async -> WriteOutcome
    /// A client request answered `ok` (snapshot, add, remove, get); any other answer, or
    /// none, throws a `RequestFailure`.
    func request(_ name: String, _ op: ClientOp, timeoutMs: Int) async throws(RequestFailure) -> ClientAnswer
    /// The events that `name` wrote since the scenario began (events.jsonl lines).
    func events(_ name: String) -> [String]

    /// Stops every process it started.
    func shutdown() async
}
