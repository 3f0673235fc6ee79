import Foundation
import Raft
import RaftNodeHost
import RaftNodeMachine
import RaftNodeWire
import RaftStorage

/// The scenario engine's back end in the seeded simulator (`harness run --sim`): node
/// machines over a simulated network and the real storage code, in simulated time.
///
/// The same steps act on it as on processes: a killed node's process is gone (its files
/// keep every byte written), a stopped one shut down as on SIGTERM, a paused one takes no
/// turn and fires no timer until resumed (what is sent to it waits), a cut drops messages
/// and closes nothing. Everything runs on the driver's thread (`SimulatedRun`), in an order
/// that only the seed decides.
public final class SimulatedCluster: ClusterBackend, @unchecked Sendable {
    public let runDirectory: String
    let timeline = SimulatedTimeline()
    let executor = SimulatedExecutor()
    public let clock: any RunClock
    let rates = SimulatedRates()
    let network: NetworkState
    private var rng: SeededRandom

    private var nodes: [String: SimulatedNode] = [:]
    private var order: [String] = []
    private var settingsOf: [String: NodeSettings] = [:]
    /// Nodes whose next start waits to be added (started with empty data, or wiped).
    private var joining: Set<String> = []
    private var incarnations: [String: Int] = [:]
    private var pausedNodes: Set<String> = []
    /// When the last message on each directed link arrives: a link delivers in order.
    private var linkClear: [String: Int64] = [:]
    /// The planted fault `stuck-peer-connection` (a -DRAFT_FAULTS build): links whose
    /// connection closed (its receiver died) and that their sender never dials again, with
    /// the sender's process they belong to.
    private var stuckLinks: [String: Int] = [:]

    /// The faults planted in every node of this run: the one RAFT_FAULT names in a
    /// -DRAFT_FAULTS build, as the processes take it, or those a test sets (the proof that
    /// the checker catches them, in any build).
    public var plantedFaults: Set<FaultSwitch> = FaultSwitch.active.map { [$0] } ?? []

    /// Snapshots taken in this run, by what makes their files identical: a node that takes
    /// one already written copies that file (the bytes are the same; deflating them again
    /// was most of a run's time). Off, every take writes its own (a test compares the two).
    var shareIdenticalTakes = true
    private struct TakeKey: Hashable {
        var index: LogIndex
        var term: Term
        var configuration: Configuration
        var digest: UInt64
        var level: Int32
    }
    private var taken: [TakeKey: (path: String, meta: SnapshotMetadata)] = [:]

    /// A node's take: the state written as the snapshot at `index` by the real writer, or a
    /// copy of the identical file another node wrote.
    func takeSnapshot(
        _ state: KeyValueStore, directory: String, level: Int32, index: LogIndex, term: Term, configuration: Configuration
    ) throws -> SnapshotMetadata {
        let key = TakeKey(index: index, term: term, configuration: configuration, digest: state.digest, level: level)
        // The earlier file may be gone (superseded on its node): then the copy fails, and the
        // state is written afresh.
        if shareIdenticalTakes, let earlier = taken[key], let meta = try? SnapshotStore.copy(earlier.path, as: earlier.meta, into: directory, keepingOlder: true)
        {
            return meta
        }
        let meta = try StateFiles.writeSnapshot(state, directory: directory, level: level, index: index, term: term, configuration: configuration)
        taken[key] = (directory + "/" + SnapshotHeader.fileName(index: index, term: term), meta)
        return meta
    }

    public init(runDirectory: String, seed: UInt64) throws {
        self.runDirectory = runDirectory
        clock = SimulatedClock(timeline: timeline, simulatedExecutor: executor)
        network = NetworkState(seed: seed)
        rng = SeededRandom(seed: seed ^ 0x73_696d_756c_6174)
        try FileManager.default.createDirectory(atPath: runDirectory + "/nodes", withIntermediateDirectories: true)
        // What each node syncs is followed (for `crash`), and no fsync is really made: the
        // simulator's time is simulated, and the files matter only to this run.
        UnsyncedWrites.follow(root: runDirectory + "/nodes/", skipSync: true)
    }

    /// Runs `body` (the engine) in this cluster's simulated time.
    public func run<T: Sendable>(_ body: @escaping @Sendable () async -> T) async throws -> T {
        try await SimulatedRun.run(executor: executor, timeline: timeline, body)
    }

    var nowMs: Millis { Millis(timeline.nowUs / 1000) }
    var unixClock: HostClock {
        let timeline = self.timeline
        return { Timestamp.simulationEpochMicros + timeline.nowUs }
    }

    func dataDirectory(_ name: String) -> String { runDirectory + "/nodes/" + name }
    static func address(_ name: String) -> String { "sim:" + name }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    // MARK: Processes

    private func launch(_ name: String, join: Bool, members: [String]) throws {
        guard nodes[name] == nil else { throw Failure("\(name) is already running") }
        let dir = dataDirectory(name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let settings = settingsOf[name] ?? NodeSettings()
        var addresses: [NodeID: String] = [:]
        for m in members { addresses[m] = Self.address(m) }
        // As raft-node does: a data dir with no state and no --join bootstraps the first
        // configuration (the members given, this node among them).
        do {
            let storage = try NodeStorage(directory: dir, keepArchive: true)
            if try storage.durableState().snapshot == nil && storage.log.log.lastIndex == 0 && !join {
                _ = try storage.snapshots.bootstrap(Configuration(voters: members, addresses: addresses))
            }
            try storage.close()
        } catch {
            throw Failure("\(name) refuses to start: \(error)")
        }
        let incarnation = (incarnations[name] ?? 0) + 1
        incarnations[name] = incarnation
        do {
            nodes[name] = try SimulatedNode(
                cluster: self, name: name, dataDir: dir, incarnation: incarnation, settings: settings, addresses: addresses,
                seed: rng.next())
        } catch {
            throw Failure("\(name) refuses to start: \(error)")
        }
        pausedNodes.remove(name)
    }

    /// The node's process ended by itself (removed, storage failed) or by SIGTERM.
    func exited(_ node: SimulatedNode) {
        if nodes[node.name] === node { nodes[node.name] = nil }
        pausedNodes.remove(node.name)
        connectionsClosed(to: node.name)
    }

    public func createCluster(_ names: [String], settings: NodeSettings) async throws {
        for n in names {
            if nodes[n] != nil { throw Failure("\(n) is already running") }
            if !order.contains(n) { order.append(n) }
            settingsOf[n] = settings
            joining.remove(n)
        }
        for n in names { try launch(n, join: false, members: names) }
        await clock.sleep(ms: 1)
    }

    public func start(_ name: String) async throws {
        guard order.contains(name) else { throw Failure("\(name) was never started") }
        try launch(name, join: joining.contains(name), members: order.filter { $0 != name || !joining.contains(name) })
        await clock.sleep(ms: 1)
    }

    public func startJoining(_ name: String, settings: NodeSettings) async throws -> String {
        if nodes[name] != nil { throw Failure("\(name) is running") }
        if order.contains(name) { try wipeData(name) } else { order.append(name) }
        settingsOf[name] = settings
        joining.insert(name)
        try launch(name, join: true, members: order.filter { $0 != name })
        await clock.sleep(ms: 1)
        return Self.address(name)
    }

    public func stop(_ name: String) async throws {
        guard let node = nodes[name] else { throw Failure("\(name) is not running") }
        if pausedNodes.contains(name) { try await resume(name) }
        node.deliver(.stop(reason: "SIGTERM"))
        // Waits for it to exit, as the process back end does.
        let deadline = clock.nowMs + 30_000
        while nodes[name] === node && clock.nowMs < deadline { await clock.sleep(ms: 5) }
        guard nodes[name] !== node else { throw Failure("\(name) did not exit within 30s of SIGTERM") }
    }

    public func kill(_ name: String) async throws {
        _ = try die(name)
        await clock.sleep(ms: 1)
    }

    /// The process is gone now, in the middle of a turn perhaps: what that turn would still
    /// have sent never leaves. Returns the node as it was.
    private func die(_ name: String) throws -> SimulatedNode {
        guard let node = nodes[name] else { throw Failure("\(name) is not running") }
        nodes[name] = nil
        pausedNodes.remove(name)
        node.diedAtUs = timeline.nowUs
        // Killed in the middle of a turn: its bytes are written (the page cache keeps them)
        // but the fsyncs not yet done in simulated time never happened.
        if timeline.nowUs < node.busyUntilUs { UnsyncedWrites.restore(node.durable(at: timeline.nowUs), under: dataDirectory(name) + "/") }
        node.close(graceful: false)
        connectionsClosed(to: name)
        return node
    }

    /// `name`'s process ended: every connection to it closed, and each other node's
    /// connection from it sees the end a link's latency later (the process transport's
    /// onPeerDisconnected; the harness's link proxies pass a close on even across a cut).
    /// With the planted fault `stuck-peer-connection`, a sender never dials it again until
    /// the sender restarts.
    func connectionsClosed(to name: String) {
        for (other, node) in nodes.sorted(by: { $0.key < $1.key }) where other != name {
            let incarnation = node.incarnation
            timeline.schedule(at: timeline.nowUs + rates.linkUs) { [weak self] in
                guard let self, let n = self.nodes[other], n.incarnation == incarnation else { return }
                n.deliver(.peerDisconnected(name))
            }
        }
        guard plantedFaults.contains(.stuckPeerConnection) else { return }
        for (other, node) in nodes.sorted(by: { $0.key < $1.key }) where other != name {
            stuckLinks[other + ">" + name] = node.incarnation
        }
    }

    /// The node dies, and what it wrote but did not fsync is cut from its files: in the
    /// middle of a turn, only the fsyncs done by now in simulated time count.
    public func crash(_ name: String) async throws -> [String] {
        let node = try die(name)
        let durable = timeline.nowUs < node.busyUntilUs ? node.durable(at: timeline.nowUs) : UnsyncedWrites.ledger
        let cut = durable.rollBack(under: dataDirectory(name))
        await clock.sleep(ms: 1)
        return cut
    }

    public func pause(_ name: String) async throws {
        guard let node = nodes[name] else { throw Failure("\(name) is not running") }
        node.paused = true
        pausedNodes.insert(name)
    }

    public func resume(_ name: String) async throws {
        guard let node = nodes[name] else { throw Failure("\(name) is not running") }
        node.paused = false
        pausedNodes.remove(name)
        node.scheduleTurn()
    }

    public func wipe(_ name: String) async throws {
        guard order.contains(name) else { throw Failure("\(name) was never started") }
        guard nodes[name] == nil else { throw Failure("\(name) is running") }
        try wipeData(name)
        joining.insert(name)
    }

    private func wipeData(_ name: String) throws {
        try NodeDataDirectory.wipe(dataDirectory(name))
    }

    // MARK: Network

    public func partition(_ groups: [[String]]?) async throws { network.partition(groups) }

    public func isolate(_ name: String) async throws { network.isolate(name) }

    public func setLoss(percent: Double, delayMs: ClosedRange<Int>?) async throws {
        network.setLoss(percent: percent, delayMs: delayMs)
    }

    /// Sends `m` from `sender` at `us`: it arrives after the link's latency and the time its
    /// bytes take, in order on its link, unless the link is cut or the message lost (decided
    /// when it is sent). A node that is gone when it arrives never sees it.
    func send(_ m: Message, from sender: SimulatedNode, at us: Int64) {
        guard sender.addressBook[m.to] != nil else {
            // The process transport has no connection to make: dropped, said once a peer.
            if m.to != sender.name, sender.reportedUnreachable.insert(m.to).inserted {
                sender.deliver(.error(what: "peer-send", detail: "no address for \(m.to); messages to it are dropped"))
            }
            return
        }
        let link = m.from + ">" + m.to
        if let stuck = stuckLinks[link], stuck == sender.incarnation { return }
        guard let delayMs = network.fate(from: m.from, to: m.to) else { return }
        let bytes = Self.approximateSize(m)
        var arrive = us + rates.linkUs + rates.us(bytes, perSecond: rates.linkBytesPerSecond) + Int64(delayMs) * 1000
        arrive = max(arrive, (linkClear[link] ?? 0) + 1)
        linkClear[link] = arrive
        let to = m.to
        // A connection made to one process of the receiver never reaches the next one.
        guard let expected = incarnations[to] else { return }
        timeline.schedule(at: arrive) { [weak self] in
            // Sent after its sender died (at the end of a turn the death cut short): never.
            if let died = sender.diedAtUs, died < us { return }
            guard let self, let node = self.nodes[to], node.incarnation == expected else { return }
            // A connection opens with a hello that says where its sender listens; a receiver
            // with no address for it learns one (the process transport's onPeerAddress).
            if node.addressBook[m.from] == nil { node.deliver(.peerAddress(m.from, Self.address(m.from))) }
            node.deliver(.message(m))
        }
    }

    /// About the bytes of the message's frame: what its transfer time is proportional to.
    static func approximateSize(_ m: Message) -> Int {
        switch m.body {
        case let .appendEntries(a): 48 + a.entries.reduce(0) { $0 + 24 + $1.payload.count }
        case let .snapshotRecoveryRequest(r): 48 + r.data.count
        default: 48
        }
    }

    // MARK: What runs

    public var running: [String] { nodes.keys.sorted() }
    public var paused: Set<String> { pausedNodes }
    public var known: [String] { order }

    // MARK: Client

    /// One request to `name`'s client socket: the answer, or why there is none.
    func call(_ name: String, _ op: ClientOp, timeoutMs: Int) async -> Result<ClientAnswer, RequestFailure> {
        guard let node = nodes[name] else {
            return .failure(RequestFailure(.refused("not sent", leader: nil), "cannot connect to \(name): not running"))
        }
        let timeline = self.timeline
        let clientUs = rates.clientUs
        let answer: ClientAnswer?? = await withCheckedContinuation { (c: CheckedContinuation<ClientAnswer??, Never>) in
            var done = false
            let finish: (ClientAnswer??) -> Void = { a in
                guard !done else { return }
                done = true
                c.resume(returning: a)
            }
            timeline.schedule(afterUs: clientUs) {
                guard node.incarnation == self.incarnations[name], !node.stopped else {
                    finish(.some(nil))
                    return
                }
                _ = node.request(op) { a in finish(.some(a)) }
            }
            timeline.schedule(afterUs: Int64(max(1, timeoutMs)) * 1000) { finish(nil) }
        }
        switch answer {
        case .none:
            return .failure(RequestFailure(.unknown("no answer", leader: nil), "no answer from \(name) within \(timeoutMs)ms"))
        case .some(.none):
            return .failure(RequestFailure(.unknown("no answer", leader: nil), "\(name) closed the connection"))
        case let .some(.some(a)):
            if case let .failed(error, leader, _) = a {
                return .failure(RequestFailure(.of(error: error, leader: leader), "\(name) answered \(a.line(id: .int(1)))"))
            }
            return .success(a)
        }
    }

    public func status(_ name: String) async -> NodeStatus? {
        guard case let .success(.status(s)) = await call(name, .status, timeoutMs: 2000) else { return nil }
        return s
    }

    public func put(_ name: String, key: String, value: String, timeoutMs: Int) async -> WriteOutcome {
        switch await call(name, .put(key: key, value: value), timeoutMs: timeoutMs) {
        case let .success(.written(index, term)): return .ok(index: index, term: term)
        case let .success(other): return .failed("not a write's answer: \(other)")
        case let .failure(f): return f.outcome
        }
    }

    public func request(_ name: String, _ op: ClientOp, timeoutMs: Int) async throws(RequestFailure) -> ClientAnswer {
        try await call(name, op, timeoutMs: timeoutMs).get()
    }

    public func events(_ name: String) -> [String] {
        let text = (try? String(contentsOfFile: dataDirectory(name) + "/events.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// Every node still running is stopped as by SIGTERM (paused ones resumed first).
    public func shutdown() async {
        for name in nodes.keys.sorted() {
            try? await stop(name)
        }
        for name in nodes.keys.sorted() { try? await kill(name) }
        UnsyncedWrites.forget(root: runDirectory + "/nodes/")
    }
}
