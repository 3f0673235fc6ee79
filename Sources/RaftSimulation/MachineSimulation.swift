import Raft
import RaftNodeMachine
import RaftNodeWire

/// What a schedule of `MachineSimulation` adds to a core schedule: the shell's side.
public struct ShellOptions: Sendable, Hashable {
    /// A client request not answered in this long is answered `timeout` by the node.
    public var requestTimeoutMs = 2_000
    /// Keys the clients write: with large values, a large state and snapshots of many chunks.
    public var keys = 10
    /// A new member is a slow learner with this chance: every message to or from it takes
    /// `slowDelay` more.
    public var slowLearnerRate = 0.0
    public var slowDelay: ClosedRange<Int> = 20...120
    /// Chance that a fault pauses a node (SIGSTOP: its connections stay, nothing it is sent
    /// is lost, its clock jumps when it resumes).
    public var pauses = true
    /// Bytes of state a take writes a millisecond, and a restore reads (32 MB/s and
    /// 150 MB/s, about what `make bench` measures).
    public var takeBytesPerMs = 32_000
    public var restoreBytesPerMs = 150_000

    public init() {}

    /// The shell's side of the schedule of `seed`.
    public static func derived(seed: UInt64) -> ShellOptions {
        var rng = SeededRandom(seed: seed &* 0x9e37_79b9_7f4a_7c15)
        var o = ShellOptions()
        o.requestTimeoutMs = Int.random(in: 300...3_000, using: &rng)
        o.keys = rng.chance(0.3) ? Int.random(in: 50...400, using: &rng) : 10
        if rng.chance(0.4) { o.slowLearnerRate = 0.5 }
        o.pauses = rng.chance(0.6)
        return o
    }
}

/// A cluster of `NodeMachine`s (the protocol core and everything the node shell decides:
/// client requests and their deadlines, pending writes, snapshot take / serve / receive /
/// restore scheduling) over a simulated network and in-memory disks, driven by one seed: the
/// same machines the process runs, under the random schedules of `Simulation`. Clients
/// speak to the machines as a socket would, and every answer is checked: every request gets
/// one (or its node's connection closes), puts acknowledged are committed with their term,
/// reads answer what the committed log held at their index, snapshots hold the state of
/// their index, and in the end every member's state is the fold of the committed log.
public final class MachineSimulation {
    public let seed: UInt64
    public let options: SimulationOptions
    public let shell: ShellOptions
    private var rng: SeededRandom
    private var queue = EventQueue<Event>()
    private var now = 0
    private var nodes: [NodeID: HostedNode] = [:]
    private var invariants = Invariants()
    private var result: SimulationResult
    private var network = SimulatedNetwork()
    private var nextNodeNumber: Int
    private var faultsOn = true
    private var clientOn = true
    private var converged = false
    /// Clients' requests without an answer yet, by token.
    private var outstanding: [ClientToken: Request] = [:]
    private var nextToken: ClientToken = 1
    private var valueSeq = 0
    /// Whom the clients believe leads (from the last redirect or success).
    private var believedLeader: NodeID?
    /// Puts and deletes acknowledged: (index, term) of their entry.
    private var acknowledged: [(index: LogIndex, term: Term, token: ClientToken)] = []
    private var highestAcknowledged: LogIndex = 0
    /// Reads answered: what and at which index.
    private var reads: [(key: String, value: String?, index: LogIndex, node: NodeID)] = []
    /// The committed log's commands, by index, as first seen committed (nil: not a command).
    private var committedCommands: [LogIndex: Command?] = [:]
    /// Each node's commit index and leader term as last checked.
    private var commitSeen: [NodeID: LogIndex] = [:]
    private var ledTerm: [NodeID: Term] = [:]
    public var trace: ((String) -> Void)?

    private final class HostedNode {
        let id: NodeID
        var disk = Disk()
        var machine: NodeMachine?
        /// The snapshot being received (lost in a crash), and whether its restore runs.
        var receiving: (meta: SnapshotMetadata, bytes: [UInt8])?
        var restoring: SnapshotMetadata?
        /// Snapshot files a transfer still reads (the machine says which).
        var inUse: Set<LogIndex> = []
        var incarnation = 0
        var exited = false
        var pausedUntil = 0
        /// Extra milliseconds on each message to or from it (a slow learner).
        var slowness = 0

        init(id: NodeID) { self.id = id }
        var isRunning: Bool { machine != nil }
    }

    private struct Request {
        var node: NodeID
        var incarnation: Int
        var op: ClientOp
        var sentAt: Int
        /// The node has read it (one paused or stopping may never read it: its client then
        /// sees the connection close, not an answer).
        var read = false
        /// The highest index of a write acknowledged before it was sent: a read must see it.
        var ackedBefore: LogIndex = 0
    }

    private enum Event {
        case wake(NodeID, incarnation: Int)
        case deliver(Message)
        /// A client's request, read by the node (a paused node reads it when it resumes).
        case request(NodeID, incarnation: Int, ClientToken, ClientOp)
        case taken(NodeID, incarnation: Int, SnapshotMetadata, [UInt8], ms: Int)
        case takeFailed(NodeID, incarnation: Int)
        case restored(NodeID, incarnation: Int, SnapshotMetadata, ms: Int)
        case restart(NodeID)
        case crash(NodeID, incarnation: Int)
        /// `from`'s process ended: its connection to the node closed (the transport's
        /// onPeerDisconnected).
        case disconnected(NodeID, incarnation: Int, from: NodeID)
        case heal
        case fault
        case client
        case membership
        case endFaults
        case endClient
        case probeConvergence

        /// The node an event happens on (a paused node's wait), if one.
        var node: NodeID? {
            switch self {
            case let .wake(id, _), let .taken(id, _, _, _, _), let .takeFailed(id, _), let .restored(id, _, _, _): id
            case let .deliver(m): m.to
            case let .request(id, _, _, _), let .disconnected(id, _, _): id
            default: nil
            }
        }
    }

    public init(seed: UInt64, options: SimulationOptions, shell: ShellOptions) {
        self.seed = seed
        self.options = options
        self.shell = shell
        rng = SeededRandom(seed: seed ^ 0x5bd1_e995)
        nextNodeNumber = options.nodeCount + 1
        result = SimulationResult(seed: seed, nodeCount: options.nodeCount, violations: [])
    }

    /// The schedule of `seed`: the core schedule's options, and the shell's.
    public convenience init(seed: UInt64, mutations: Set<Settings.Mutation> = [], storm: Bool? = nil) {
        var options = SimulationOptions.derived(seed: seed, mutations: mutations, storm: storm)
        var shell = ShellOptions.derived(seed: seed)
        if options.settings.maxEntriesPerRequest * options.settings.maxInflight < 20 {
            // A pipeline of a few entries a round trip carries less than the clients write to a
            // learner a fifth of a second away: it would never catch up, by arithmetic alone.
            shell.slowLearnerRate = 0
        }
        if shell.keys > 10 || shell.slowLearnerRate > 0 {
            // A large state, or a learner a round trip of a tenth of a second away: chunks of
            // a few KiB (as a real node's 64 KiB), or a transfer outlasts any schedule.
            var rng = SeededRandom(seed: seed &* 0x2127_599b_f432_5c37)
            options.settings.snapshotChunkSize = max(options.settings.snapshotChunkSize, Int.random(in: 1_024...16_384, using: &rng))
        }
        self.init(seed: seed, options: options, shell: shell)
    }

    private func log(_ s: @autoclosure () -> String) {
        if let trace { trace("[\(now)] " + s()) }
    }

    // MARK: Running

    public func run() -> SimulationResult {
        let ids = (1...options.nodeCount).map { "n\($0)" }
        let config = Configuration(voters: ids, addresses: Dictionary(uniqueKeysWithValues: ids.map { ($0, "sim://\($0)") }))
        let empty = Self.serialize(KeyValueStore())
        for id in ids {
            let node = HostedNode(id: id)
            var meta = DurableState.bootstrap(config).snapshot!
            meta.size = UInt64(empty.count)
            node.disk.latest = meta
            node.disk.snapshots[Disk.SnapshotKey(meta)] = empty
            nodes[id] = node
            start(id)
        }
        if options.crashes || options.partitions || options.membershipChanges { queue.push(.fault, at: options.faultInterval) }
        if options.membershipChanges { queue.push(.membership, at: Int.random(in: 300...1000, using: &rng)) }
        queue.push(.client, at: 50)
        queue.push(.endFaults, at: options.duration)
        let end = options.duration + options.loadWindow + 2 * options.settleDuration
        while !converged, let (time, event) = queue.pop(), time <= end {
            now = time
            handle(event)
            result.steps += 1
            if !invariants.violations.isEmpty { break }
        }
        if invariants.violations.isEmpty {
            for (kind, detail) in convergenceProblems() { invariants.fail(kind, now, detail) }
        }
        if invariants.violations.isEmpty { checkAnswers() }
        result.violations = invariants.violations
        return result
    }

    private func handle(_ event: Event) {
        // A paused node does nothing until it resumes; what it was sent waits in its socket.
        if let id = event.node, let node = nodes[id], node.pausedUntil > now {
            queue.push(event, at: node.pausedUntil)
            return
        }
        switch event {
        case let .wake(id, incarnation):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil else { return }
            node.machine!.advance(to: Millis(now))
            drain(node)
            queue.push(.wake(id, incarnation: incarnation), at: now + options.tickMs)
        case let .disconnected(id, incarnation, from):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil else { return }
            log("\(id) sees its connection from \(from) close")
            node.machine!.step(.peerDisconnected(from), now: Millis(now))
            drain(node)
        case let .deliver(m):
            guard let node = nodes[m.to], node.machine != nil else { return }
            log("deliver \(m)")
            node.machine!.step(.message(m), now: Millis(now))
            drain(node)
        case let .request(id, incarnation, token, op):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil else { return }
            log("\(id) reads request \(token)")
            outstanding[token]?.read = true
            node.machine!.step(.client(token, op), now: Millis(now))
            drain(node)
        case let .taken(id, incarnation, meta, bytes, ms):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil else { return }
            // The older files stay until the machine says they go (`.retireSnapshots`).
            node.disk.storeSnapshot(meta, bytes, keepingOlder: true)
            result.snapshotsTaken += 1
            log("\(id) took \(meta)")
            node.machine!.step(.snapshotTaken(meta, ms: ms), now: Millis(now))
            drain(node)
        case let .takeFailed(id, incarnation):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil else { return }
            node.machine!.step(.snapshotTakeFailed("simulated: the take failed"), now: Millis(now))
            drain(node)
        case let .restored(id, incarnation, meta, ms):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil, node.restoring == meta,
                let r = node.receiving, r.meta == meta
            else { return }
            node.restoring = nil
            node.receiving = nil
            var restorer = KeyValueRestorer()
            do {
                try restorer.feed(r.bytes)
                let store = try restorer.finish()
                expectState(store, at: meta.index, of: "\(id)'s restored snapshot \(meta)")
                node.disk.storeSnapshot(meta, r.bytes)
                result.snapshotsInstalled += 1
                node.machine!.step(.snapshotRestored(meta, store, ms: ms, note: "simulated restore"), now: Millis(now))
            } catch {
                invariants.fail(.shell, now, "\(id): snapshot \(meta) as received does not decode: \(error)")
                node.machine!.step(.snapshotRestoreFailed(meta, "\(error)"), now: Millis(now))
            }
            drain(node)
        case let .crash(id, incarnation):
            guard let node = nodes[id], node.incarnation == incarnation, node.machine != nil else { return }
            crash(id)
            queue.push(.restart(id), at: now + Int.random(in: options.downtime, using: &rng))
        case let .restart(id):
            guard let node = nodes[id], node.machine == nil, !node.exited else { return }
            start(id)
        case .heal:
            network.heal()
        case .fault:
            guard faultsOn else { return }
            injectFault()
            queue.push(.fault, at: now + Int.random(in: options.faultInterval / 2...options.faultInterval * 3 / 2, using: &rng))
        case .membership:
            guard faultsOn else { return }
            changeMembership()
            queue.push(.membership, at: now + Int.random(in: 400...1400, using: &rng))
        case .client:
            guard clientOn else { return }
            checkDeadlines()
            sendRequests()
            queue.push(.client, at: now + options.clientInterval)
        case .endFaults:
            faultsOn = false
            network.heal()
            for id in nodes.keys.sorted() where nodes[id]!.machine == nil && !nodes[id]!.exited { start(id) }
            queue.push(.endClient, at: now + options.loadWindow)
        case .endClient:
            clientOn = false
            queue.push(.probeConvergence, at: now + 100)
        case .probeConvergence:
            checkDeadlines()
            if convergenceProblems().isEmpty && outstanding.isEmpty {
                converged = true
            } else {
                queue.push(.probeConvergence, at: now + 100)
            }
        }
    }

    // MARK: Nodes

    private func start(_ id: NodeID) {
        guard let node = nodes[id] else { return }
        let state = node.disk.durableState
        var store = KeyValueStore()
        if let meta = state.snapshot, let bytes = node.disk.snapshots[Disk.SnapshotKey(meta)] {
            var restorer = KeyValueRestorer()
            do {
                try restorer.feed(bytes)
                store = try restorer.finish()
            } catch {
                invariants.fail(.shell, now, "\(id): its snapshot \(meta) does not decode at start: \(error)")
            }
        }
        var config = NodeMachine.Config(
            name: id, settings: options.settings, tickMs: options.tickMs, requestTimeoutMs: shell.requestTimeoutMs, initialAddresses: [:])
        config.ignoreSnapshotAfterRestart = false
        node.machine = NodeMachine(config: config, seed: rng.next(), state: state, store: store, now: Millis(now))
        node.receiving = nil
        node.restoring = nil
        node.inUse = []
        node.pausedUntil = now
        commitSeen[id] = node.machine!.core.commitIndex
        ledTerm[id] = nil
        log("start \(id) term=\(state.hardState.term) log=\(state.log.firstIndex)...\(state.log.lastIndex) snapshot=\(state.snapshot.map { "\($0.index)" } ?? "-")")
        drain(node)
        queue.push(.wake(id, incarnation: node.incarnation), at: now + 1 + Int(rng.next() % UInt64(options.tickMs)))
    }

    /// The process dies: what it did not persist is gone, and so are its clients'
    /// connections (their requests end without an answer, as a closed socket's do).
    private func crash(_ id: NodeID) {
        guard let node = nodes[id], node.machine != nil else { return }
        node.machine = nil
        node.receiving = nil
        node.restoring = nil
        node.incarnation += 1
        node.pausedUntil = now
        result.crashes += 1
        outstanding = outstanding.filter { $0.value.node != id }
        log("crash \(id)")
        for (other, peer) in nodes.sorted(by: { $0.key < $1.key }) where other != id && peer.machine != nil {
            queue.push(.disconnected(other, incarnation: peer.incarnation, from: id), at: now + 1)
        }
    }

    /// Carries out the machine's outputs in order, then checks what its core now holds.
    private func drain(_ node: HostedNode) {
        let id = node.id
        var crashAt = Int.max
        var carried = 0
        while let machine = node.machine, machine.pendingOutputs {
            let outputs = node.machine!.takeOutputs()
            if crashAt == .max && faultsOn && options.crashes && rng.chance(options.midStepCrashRate) {
                crashAt = carried + Int(rng.next() % UInt64(outputs.count))
            }
            for output in outputs {
                if carried == crashAt {
                    crash(id)
                    queue.push(.restart(id), at: now + Int.random(in: options.downtime, using: &rng))
                    return
                }
                carried += 1
                perform(output, on: node)
                if node.machine == nil { return }
            }
        }
        guard let machine = node.machine else { return }
        observe(machine, of: node)
        if machine.stopReason != nil { stop(node) }
    }

    /// The machine asked to stop (it was removed): its last outputs, then the process ends.
    /// Every request it was given must have been answered by then.
    private func stop(_ node: HostedNode) {
        node.machine!.shutdown(now: Millis(now))
        for output in node.machine!.takeOutputs() { perform(output, on: node) }
        let left = outstanding.filter { $0.value.node == node.id && $0.value.incarnation == node.incarnation && $0.value.read }
        for (token, r) in left.sorted(by: { $0.key < $1.key }) {
            invariants.fail(.shell, now, "\(node.id) stopped (\(node.machine!.stopReason ?? "")) without answering request \(token) (\(r.op)) of \(now - r.sentAt) ms ago")
        }
        log("\(node.id) stops: \(node.machine!.stopReason ?? "")")
        node.machine = nil
        node.exited = true
        node.incarnation += 1
        outstanding = outstanding.filter { $0.value.node != node.id }
    }

    private func perform(_ output: NodeOutput, on node: HostedNode) {
        let id = node.id
        switch output {
        case let .persist(action):
            node.disk.persist(action, by: id, time: now, invariants: &invariants)
        case let .send(m):
            transmit(m)
        case let .sendSnapshotChunk(to, term, meta, offset, length, done):
            switch node.disk.snapshotChunk(from: id, to: to, term: term, meta, offset: offset, length: length, done: done, time: now, invariants: &invariants) {
            case let .message(m)?: transmit(m)
            case .fileGone?: node.machine!.step(.snapshotSendFailed(to: to, meta, reason: "file deleted"), now: Millis(now))
            case nil: break
            }
        case let .answer(token, answer):
            answered(token, answer, by: node)
        case let .event(event, _):
            log("\(id) event \(event)")
        case let .note(text):
            log("\(id): \(text)")
        case let .takeSnapshot(index, term, configuration, state):
            // The state is the copy taken when the core asked (the machine may have applied
            // more since): it must be the state applied at `index` anywhere.
            expectState(state, at: index, of: "\(id)'s snapshot at \(index)")
            if rng.chance(0.05) {
                queue.push(.takeFailed(id, incarnation: node.incarnation), at: now + Int.random(in: 0...50, using: &rng))
                return
            }
            let bytes = Self.serialize(state)
            let meta = SnapshotMetadata(index: index, term: term, configuration: configuration, size: UInt64(bytes.count))
            let ms = 2 + bytes.count / shell.takeBytesPerMs + Int.random(in: 0...20, using: &rng)
            queue.push(.taken(id, incarnation: node.incarnation, meta, bytes, ms: ms), at: now + ms)
        case let .beginSnapshotReceive(_, meta):
            node.receiving = (meta, [])
            node.restoring = nil
        case let .writeSnapshotChunk(meta, offset, data):
            guard var r = node.receiving, r.meta == meta, offset == UInt64(r.bytes.count) else {
                invariants.fail(.shell, now, "\(id) writes a chunk at \(offset) of \(meta) out of order")
                return
            }
            r.bytes += data
            node.receiving = r
        case let .installSnapshot(meta):
            guard let r = node.receiving, r.meta == meta, UInt64(r.bytes.count) == meta.size else {
                invariants.fail(.shell, now, "\(id) installs \(meta) with \(node.receiving?.bytes.count ?? -1) bytes received")
                return
            }
            node.restoring = meta
            let ms = Int.random(in: options.installTime, using: &rng) + r.bytes.count / shell.restoreBytesPerMs
            queue.push(.restored(id, incarnation: node.incarnation, meta, ms: ms), at: now + ms)
        case .abortSnapshotReceive:
            node.receiving = nil
            node.restoring = nil
        case let .snapshotFilesInUse(indices):
            node.inUse = indices
        case let .retireSnapshots(newest):
            let inUse = node.inUse
            node.disk.retireSnapshots(olderThan: newest.index) { inUse.contains($0.index) }
        case .setPeers:
            break  // the simulated network delivers by name
        }
    }

    /// What the core now holds: a new leader, commits, the applied state, its configuration.
    private func observe(_ machine: NodeMachine, of node: HostedNode) {
        let core = machine.core
        let id = node.id
        if core.role == .leader && ledTerm[id] != core.term {
            ledTerm[id] = core.term
            result.elections += 1
            log("\(id) leads term \(core.term)")
            invariants.leaderElected(id, term: core.term, log: core.log, time: now)
        }
        let seen = commitSeen[id] ?? 0
        if core.commitIndex > seen {
            invariants.committed(upTo: core.commitIndex, from: seen, log: core.log, by: id, inTerm: core.term, time: now)
            var i = max(seen + 1, core.log.firstIndex)
            while i <= core.commitIndex, let e = core.log.entry(at: i) {
                if committedCommands[i] == nil {
                    committedCommands[i] = .some(e.type == .command ? try? Command(decoding: e.payload) : nil)
                    if e.type == .config && core.role == .leader { result.configChanges += 1 }
                }
                i += 1
            }
            commitSeen[id] = core.commitIndex
        }
        invariants.applied(core.appliedIndex, digest: machine.store.digest, by: id, time: now)
        invariants.checkConfigurations(core, time: now)
    }

    /// A state the shell holds for `index` (a snapshot it takes or restores) must be the
    /// state applied at that index.
    private func expectState(_ store: KeyValueStore, at index: LogIndex, of what: String) {
        if let known = invariants.appliedState(at: index), known != store.digest {
            invariants.fail(.shell, now, "\(what) holds digest \(store.digest.hex16), not the state applied at \(index)")
        }
    }

    static func serialize(_ store: KeyValueStore) -> [UInt8] {
        var bytes: [UInt8] = []
        store.serialize { bytes += $0 }
        return bytes
    }

    // MARK: Clients

    private func sendRequests() {
        let running = runningIDs
        guard !running.isEmpty else { return }
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let target: NodeID
            if let l = believedLeader, nodes[l]?.machine != nil, !rng.chance(0.1) {
                target = l
            } else {
                target = running.randomElement(using: &rng)!
            }
            let key = "k\(rng.next() % UInt64(shell.keys))"
            let op: ClientOp
            switch rng.next() % 100 {
            case 0..<70:
                valueSeq += 1
                op = .put(key: key, value: "v\(valueSeq)" + String(repeating: "x", count: options.valueBytes))
            case 70..<75: op = .delete(key: key)
            case 75..<95: op = .get(key: key)
            case 95..<98: op = .status
            default: op = .snapshot
            }
            request(op, to: target)
        }
    }

    private func request(_ op: ClientOp, to id: NodeID) {
        guard let node = nodes[id], node.machine != nil else { return }
        let token = nextToken
        nextToken += 1
        outstanding[token] = Request(
            node: id, incarnation: node.incarnation, op: op, sentAt: now, ackedBefore: highestAcknowledged)
        log("client \(token) -> \(id): \(op)")
        handle(.request(id, incarnation: node.incarnation, token, op))
    }

    private func answered(_ token: ClientToken, _ answer: ClientAnswer, by node: HostedNode) {
        guard let r = outstanding.removeValue(forKey: token) else {
            invariants.fail(.shell, now, "\(node.id) answers request \(token), which is not waiting (answered twice?): \(answer)")
            return
        }
        log("answer \(token) from \(node.id): \(answer)")
        result.clientAnswers += 1
        switch (r.op, answer) {
        case (.put, let .written(index, term)), (.delete, let .written(index, term)):
            acknowledged.append((index, term, token))
            highestAcknowledged = max(highestAcknowledged, index)
            result.writesAcknowledged += 1
            believedLeader = node.id
        case (let .get(key), let .read(value, index)):
            // Linearizable: it saw every write acknowledged before it was sent.
            if index < r.ackedBefore {
                invariants.fail(.stateMachineSafety, now, "\(node.id) read \(key) at \(index), behind a write acknowledged at \(r.ackedBefore) before the read was sent: a stale read")
            }
            reads.append((key, value, index, node.id))
            believedLeader = node.id
        case (.status, let .status(s)):
            let core = node.machine!.core
            let store = node.machine!.store
            if s.commitIndex > s.lastIndex || s.term != core.term || s.commitIndex != core.commitIndex || s.appliedIndex != core.appliedIndex
                || s.digest != store.digestHex
            {
                invariants.fail(.shell, now, "\(node.id)'s status says term \(s.term), commit \(s.commitIndex), applied \(s.appliedIndex), last \(s.lastIndex), digest \(s.digest); its core: term \(core.term), commit \(core.commitIndex), applied \(core.appliedIndex), digest \(store.digestHex)")
            }
        case (.snapshot, .done), (.add, .done), (.remove, .done):
            break
        case (_, let .failed(error, leader, _)):
            if error == .notLeader { believedLeader = leader }
        default:
            invariants.fail(.shell, now, "\(node.id) answers \(r.op) with \(answer)")
        }
    }

    /// A running node answers each request within its timeout (and a tick or two of the
    /// clock that enforces it).
    private func checkDeadlines() {
        let limit = shell.requestTimeoutMs + 3 * options.tickMs + 20
        for (token, r) in outstanding.sorted(by: { $0.key < $1.key }) where now - r.sentAt > limit {
            // A paused node's clock stops: its time runs from when it resumed.
            guard let node = nodes[r.node], node.incarnation == r.incarnation, node.machine != nil,
                now - max(r.sentAt, node.pausedUntil) > limit
            else { continue }
            invariants.fail(.shell, now, "request \(token) (\(r.op)) to \(r.node) has no answer after \(now - r.sentAt) ms (timeout \(shell.requestTimeoutMs) ms)")
            outstanding[token] = nil
        }
    }

    /// The end: every acknowledged write is committed at its index with its term, and every
    /// read saw what the committed log held just before its own entry.
    private func checkAnswers() {
        for a in acknowledged {
            guard let c = invariants.committed[a.index] else {
                invariants.fail(.lostWrite, now, "request \(a.token) was acknowledged at \(a.index)@\(a.term), which no node committed")
                continue
            }
            if c.term != a.term {
                invariants.fail(.lostWrite, now, "request \(a.token) was acknowledged at \(a.index)@\(a.term); \(a.index)@\(c.term) was committed")
            }
        }
        var writes: [String: [(LogIndex, String?)]] = [:]
        for (index, command) in committedCommands.sorted(by: { $0.key < $1.key }) {
            switch command {
            case let .put(key, value)?: writes[key, default: []].append((index, value))
            case let .delete(key)?: writes[key, default: []].append((index, nil))
            default: break
            }
        }
        for r in reads {
            // Unknowable when part of the log before it was never seen committed.
            guard (1..<r.index).allSatisfy({ committedCommands[$0] != nil }) else { continue }
            // Through its index: a read by ReadIndex answers from the state applied through
            // it (a get in the log, from the state before its own entry, the same).
            let expected = writes[r.key]?.last { $0.0 <= r.index }?.1 ?? nil
            if r.value != expected {
                invariants.fail(.stateMachineSafety, now, "\(r.node) read \(r.key) = \(r.value.map { "\($0.prefix(12))" } ?? "nil") at \(r.index); the committed log held \(expected.map { "\($0.prefix(12))" } ?? "nil")")
            }
            result.readsChecked += 1
        }
    }

    // MARK: Network

    private func transmit(_ m: Message) {
        let slow = (nodes[m.from]?.slowness ?? 0) + (nodes[m.to]?.slowness ?? 0)
        for at in network.arrivals(from: m.from, to: m.to, now: now, extra: slow, options: options, rng: &rng) { queue.push(.deliver(m), at: at) }
    }

    // MARK: Faults

    private var runningIDs: [NodeID] { nodes.keys.sorted().filter { nodes[$0]!.machine != nil } }

    private var currentLeader: NodeID? {
        runningIDs.filter { nodes[$0]!.machine!.core.role == .leader }.max { nodes[$0]!.machine!.core.term < nodes[$1]!.machine!.core.term }
    }

    private func injectFault() {
        switch rng.next() % 100 {
        case 0..<20 where options.crashes:
            guard let victim = runningIDs.randomElement(using: &rng) else { return }
            crash(victim)
            queue.push(.restart(victim), at: now + Int.random(in: options.downtime, using: &rng))
        case 20..<30 where options.crashes:
            guard let leader = currentLeader else { return }
            crash(leader)
            queue.push(.restart(leader), at: now + Int.random(in: options.downtime, using: &rng))
        case 30..<45 where options.partitions:
            let far = network.partition(nodes.keys.sorted().filter { !nodes[$0]!.exited }, rng: &rng)
            result.partitions += 1
            log("partition \(far)")
            queue.push(.heal, at: now + Int.random(in: 100...2500, using: &rng))
        case 45..<52 where options.partitions:
            guard let leader = currentLeader else { return }
            network.isolate(leader)
            result.partitions += 1
            log("isolate \(leader)")
            queue.push(.heal, at: now + Int.random(in: 200...2500, using: &rng))
        case 52..<62 where shell.pauses:
            guard let id = (rng.chance(0.5) ? currentLeader : nil) ?? runningIDs.randomElement(using: &rng) else { return }
            // A pause of a paused node can only extend it: what waits for its end stays in order.
            nodes[id]!.pausedUntil = max(nodes[id]!.pausedUntil, now + Int.random(in: 50...1500, using: &rng))
            log("pause \(id) until \(nodes[id]!.pausedUntil)")
        case 62..<88 where options.membershipChanges:
            changeMembership()
        case 88..<100:
            guard let id = runningIDs.randomElement(using: &rng) else { return }
            request(.snapshot, to: id)
        default:
            break
        }
    }

    /// A membership change as a client asks for it: `add` or `remove` sent to the leader.
    private func changeMembership() {
        guard let leaderID = currentLeader, let core = nodes[leaderID]!.machine?.core else { return }
        let config = core.latestConfiguration
        let roll = rng.next() % 100
        if config.voters.count < 7 && (roll < 40 || config.voters.count < 3) {
            // A node is wiped only when no configuration that may still count names it: the
            // leader's newest is committed and leaves it out (the add may yet be refused).
            let settled = core.latestConfigurationIndex <= core.commitIndex
            let gone = nodes.keys.sorted().filter { settled && !config.isMember($0) && (nodes[$0]!.exited || !nodes[$0]!.isRunning) }
            let id: NodeID
            if let back = gone.randomElement(using: &rng), rng.chance(0.5) {
                id = back
            } else {
                id = "n\(nextNodeNumber)"
                nextNodeNumber += 1
            }
            // Started empty (a wiped or new node), then added, as the harness does.
            let fresh = HostedNode(id: id)
            fresh.incarnation = (nodes[id]?.incarnation ?? 0) + 1
            if rng.chance(shell.slowLearnerRate) { fresh.slowness = Int.random(in: shell.slowDelay, using: &rng) }
            outstanding = outstanding.filter { $0.value.node != id }
            nodes[id] = fresh
            start(id)
            log("add \(id)" + (fresh.slowness > 0 ? " (a slow learner: +\(fresh.slowness) ms a message)" : ""))
            request(.add(node: id, address: "sim://\(id)"), to: leaderID)
        } else if config.voters.count > 3 || (config.voters.count == 3 && !config.learners.isEmpty) {
            let candidates = config.learners.isEmpty || roll % 2 == 0 ? config.voters : config.learners
            guard let victim = candidates.randomElement(using: &rng) else { return }
            log("remove \(victim)")
            request(.remove(node: victim), to: leaderID)
        }
    }

    // MARK: The end

    /// What keeps the cluster from having converged: a leader with its configuration and log
    /// committed, every member running with that commit applied, and every member's state
    /// the fold of the committed log.
    private func convergenceProblems() -> [(Violation.Kind, String)] {
        guard let leaderID = currentLeader, let leader = nodes[leaderID]!.machine else {
            return [(.liveness, "no leader after healing")]
        }
        var problems: [(Violation.Kind, String)] = []
        let core = leader.core
        result.finalCommitIndex = core.commitIndex
        result.finalMembers = core.configuration.members
        if core.commitIndex < core.log.lastIndex {
            problems.append((.liveness, "\(leaderID) committed \(core.commitIndex) of \(core.log.lastIndex)"))
        }
        if core.latestConfigurationIndex > core.commitIndex {
            problems.append((.liveness, "\(leaderID)'s configuration \(core.latestConfigurationIndex) is not committed (commit \(core.commitIndex))"))
        }
        for id in core.configuration.members {
            guard let m = nodes[id]?.machine else {
                problems.append((.liveness, "member \(id) is not running"))
                continue
            }
            if m.core.appliedIndex != core.commitIndex || m.store.digest != leader.store.digest {
                problems.append((.liveness, "\(id) applied \(m.core.appliedIndex) (digest \(m.store.digest.hex16)), leader \(leaderID) committed \(core.commitIndex) (digest \(leader.store.digest.hex16))"))
            }
        }
        if problems.isEmpty, (1...max(1, core.commitIndex)).allSatisfy({ committedCommands[$0] != nil }) {
            // The leader's state is the fold of the committed log.
            var folded = KeyValueStore()
            for i in 1...max(1, core.commitIndex) { if let c = committedCommands[i] ?? nil { c.apply(to: &folded) } }
            if folded.digest != leader.store.digest {
                problems.append((.lostWrite, "\(leaderID)'s state (digest \(leader.store.digest.hex16)) is not the fold of the committed log (digest \(folded.digest.hex16))"))
            }
        }
        return problems
    }
}
