import Raft

/// What a schedule did, and whether every check held.
public struct SimulationResult: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var nodeCount: Int
    public var violations: [Violation]
    public var steps = 0
    public var elections = 0
    public var snapshotsTaken = 0
    public var snapshotsInstalled = 0
    /// Configuration entries a leader saw committed.
    public var configChanges = 0
    public var crashes = 0
    public var partitions = 0
    public var writesAcknowledged = 0
    public var finalCommitIndex: LogIndex = 0
    public var finalMembers: [NodeID] = []
    /// Hosting node machines: client requests answered, and reads checked against the log.
    public var clientAnswers = 0
    public var readsChecked = 0

    public var passed: Bool { violations.isEmpty }

    public var description: String {
        let verdict = passed ? "ok" : "FAILED"
        var s = "seed \(seed): \(verdict) nodes=\(nodeCount) steps=\(steps) elections=\(elections) snapshots=\(snapshotsTaken)/\(snapshotsInstalled) configs=\(configChanges) crashes=\(crashes) partitions=\(partitions) acked=\(writesAcknowledged) commit=\(finalCommitIndex) members=\(finalMembers.joined(separator: ","))"
        if clientAnswers > 0 { s += " answers=\(clientAnswers) reads=\(readsChecked)" }
        for v in violations { s += "\n  \(v)" }
        return s
    }
}

/// A cluster of `RaftCore`s over a simulated network, driven by one seed.
public final class Simulation {
    public let seed: UInt64
    public let options: SimulationOptions
    private var rng: SeededRandom
    private var queue = EventQueue<Event>()
    private var now = 0
    /// How often a snapshot take fails.
    static let takeFailure = 0.05
    /// The longest a take runs (ms): long enough for a leader's snapshot to arrive meanwhile.
    static let takeTime = 300
    private var nodes: [NodeID: SimulatedNode] = [:]
    private var invariants = Invariants()
    private var result: SimulationResult
    private var network = SimulatedNetwork()
    private var nextNodeNumber: Int
    private var clientSeq = 0
    private var pending: [PendingKey: PendingWrite] = [:]
    /// Key -> the highest index of an acknowledged write to it.
    private var acknowledged: [String: LogIndex] = [:]
    /// Each node's commit index as last checked.
    private var commitSeen: [NodeID: LogIndex] = [:]
    private var faultsOn = true
    private var converged = false
    private var clientOn = true
    /// Under steady writes after the faults: snapshots each member installed since the
    /// leader last saw it replicating.
    private var installsSinceReplicating: [NodeID: Int] = [:]
    /// Verbose trace of every step, for replaying a seed by hand.
    public var trace: ((String) -> Void)?

    private enum Event {
        case tick(NodeID, incarnation: Int)
        case deliver(Message)
        case snapshotTaken(NodeID, incarnation: Int, SnapshotMetadata, [UInt8])
        case snapshotTakeFailed(NodeID, incarnation: Int)
        case snapshotInstalled(NodeID, incarnation: Int, SnapshotMetadata)
        case restart(NodeID)
        case crash(NodeID, incarnation: Int)
        case heal
        case fault
        case client
        case endFaults
        case endClient
        case probeConvergence
        /// Under steady writes after the faults: which members replicate now.
        case sampleReplication
        /// When the faults end: one follower stays down for a while under the steady writes.
        case laggard
        case membership
    }

    private struct PendingKey: Hashable {
        var node: NodeID
        var index: LogIndex
    }

    private struct PendingWrite {
        var term: Term
        var key: String
        var incarnation: Int
    }

    public init(seed: UInt64, options: SimulationOptions) {
        self.seed = seed
        self.options = options
        self.rng = SeededRandom(seed: seed)
        self.nextNodeNumber = options.nodeCount + 1
        self.result = SimulationResult(seed: seed, nodeCount: options.nodeCount, violations: [])
    }

    public convenience init(seed: UInt64, mutations: Set<Settings.Mutation> = []) {
        self.init(seed: seed, options: .derived(seed: seed, mutations: mutations))
    }

    // MARK: Running

    /// Runs the schedule: faults and load for `duration`, then healing and settling, then the
    /// convergence check. Stops at the first violation.
    public func run() -> SimulationResult {
        let ids = (1...options.nodeCount).map { "n\($0)" }
        let config = Configuration(voters: ids, addresses: Dictionary(uniqueKeysWithValues: ids.map { ($0, "sim://\($0)") }))
        for id in ids {
            var node = SimulatedNode(id: id, disk: Disk())
            node.disk.latest = DurableState.bootstrap(config).snapshot
            node.disk.snapshots[Disk.SnapshotKey(node.disk.latest!)] = KeyValueState().serialized()
            node.disk.latest!.size = UInt64(node.disk.snapshots.values.first!.count)
            nodes[id] = node
            start(id)
        }
        if options.crashes || options.partitions || options.membershipChanges {
            queue.push(.fault, at: options.faultInterval)
        }
        queue.push(.client, at: 50)
        if options.membershipChanges { queue.push(.membership, at: Int.random(in: 300...1000, using: &rng)) }
        queue.push(.endFaults, at: options.duration)
        // Settling ends once the cluster has converged; a slow schedule (one entry a request,
        // a backlog of writes) gets up to `settleDuration` more to drain.
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
        result.violations = invariants.violations
        return result
    }

    private func log(_ s: @autoclosure () -> String) {
        if let trace { trace("[\(now)] " + s()) }
    }

    private func handle(_ event: Event) {
        switch event {
        case let .tick(id, incarnation):
            guard var node = nodes[id], node.incarnation == incarnation, node.core != nil else { return }
            node.core!.tick()
            nodes[id] = node
            drain(id)
            queue.push(.tick(id, incarnation: incarnation), at: now + options.tickMs)
        case let .deliver(m):
            guard var node = nodes[m.to], node.core != nil else { return }
            log("deliver \(m)")
            node.core!.step(m)
            nodes[m.to] = node
            drain(m.to)
        case let .snapshotTaken(id, incarnation, meta, bytes):
            guard var node = nodes[id], node.incarnation == incarnation, node.core != nil else { return }
            let inUse = Set(node.core!.progress.values.compactMap { $0.transfer.map { Disk.SnapshotKey($0.snapshot) } })
            node.disk.storeSnapshot(meta, bytes, inUse: inUse)
            node.core!.snapshotTaken(meta)
            nodes[id] = node
            result.snapshotsTaken += 1
            log("\(id) took \(meta)")
            drain(id)
        case let .snapshotTakeFailed(id, incarnation):
            // A take that fails (a full disk, say) may end while a leader's snapshot is
            // being received or installed: it must not disturb that.
            guard var node = nodes[id], node.incarnation == incarnation, node.core != nil else { return }
            node.core!.snapshotFailed(nil, reason: "simulated: the take failed")
            nodes[id] = node
            log("\(id) failed to take a snapshot")
            drain(id)
        case let .snapshotInstalled(id, incarnation, meta):
            guard var node = nodes[id], node.incarnation == incarnation, node.core != nil,
                let r = node.receiving, r.meta == meta
            else { return }
            node.receiving = nil
            do {
                let state = try KeyValueState(deserializing: r.bytes)
                guard state.appliedIndex == meta.index else {
                    invariants.fail(.shell, now, "\(id): snapshot \(meta) holds state at \(state.appliedIndex)")
                    return
                }
                // The shell installs only what the core asked for and never told it to
                // abort: the core must still want it.
                guard node.core!.snapshotInstalled(meta) else {
                    invariants.fail(.shell, now, "\(id): the core refused the install of \(meta) it asked for, with no abort")
                    return
                }
                node.disk.storeSnapshot(meta, r.bytes)
                node.state = state
                result.snapshotsInstalled += 1
                // The leader's catch-up retention is what prevents a chase; a schedule that
                // keeps almost nothing beyond the trailing entries may chase, by design.
                if !faultsOn && clientOn && options.settings.maxRetainedBytes >= Settings().maxRetainedBytes {
                    let n = (installsSinceReplicating[id] ?? 0) + 1
                    installsSinceReplicating[id] = n
                    if n >= 3 {
                        invariants.fail(.progressUnderLoad, now, "\(id) installed \(n) snapshots in a row under steady writes (the last \(meta)) and was never seen replicating between them")
                    }
                }
            } catch {
                node.core!.snapshotFailed(meta, reason: "\(error)")
            }
            nodes[id] = node
            drain(id)
        case let .crash(id, incarnation):
            guard let node = nodes[id], node.incarnation == incarnation, node.core != nil else { return }
            crash(id)
            queue.push(.restart(id), at: now + Int.random(in: options.downtime, using: &rng))
        case let .restart(id):
            guard let node = nodes[id], node.core == nil, !node.exited else { return }
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
            proposeWrites()
            queue.push(.client, at: now + options.clientInterval)
        case .endFaults:
            faultsOn = false
            network.heal()
            for id in nodes.keys.sorted() where nodes[id]!.core == nil && !nodes[id]!.exited {
                start(id)
            }
            // Writes go on for a while, with no faults: a member that installs a snapshot must
            // then replicate, not need the next snapshot, and the next (a chase). Then quiet,
            // so that every member can reach the same applied index.
            queue.push(.endClient, at: now + options.loadWindow)
            queue.push(.sampleReplication, at: now + 100)
            if options.laggardDowntime != nil { queue.push(.laggard, at: now + 100) }
        case .laggard:
            // A laggard under the steady writes: once there is a leader, a follower down long
            // enough that the leader compacts past it, so that it comes back to a snapshot
            // while writes go on.
            guard clientOn, let lag = options.laggardDowntime else { return }
            guard let leaderID = currentLeader else {
                queue.push(.laggard, at: now + 100)
                return
            }
            let followers = runningIDs.filter { $0 != leaderID && nodes[leaderID]!.core!.progress[$0] != nil }
            if let follower = followers.randomElement(using: &rng) {
                crash(follower)
                queue.push(.restart(follower), at: now + Int.random(in: lag, using: &rng))
            }
        case .sampleReplication:
            guard clientOn else { return }
            if let leaderID = currentLeader, let leader = nodes[leaderID]!.core {
                for (peer, pr) in leader.progress where pr.state == .replicate { installsSinceReplicating[peer] = 0 }
            }
            queue.push(.sampleReplication, at: now + 100)
        case .endClient:
            clientOn = false
            queue.push(.probeConvergence, at: now + 100)
        case .probeConvergence:
            if convergenceProblems().isEmpty {
                converged = true
            } else {
                queue.push(.probeConvergence, at: now + 100)
            }
        }
    }

    // MARK: Nodes

    private func start(_ id: NodeID) {
        guard var node = nodes[id] else { return }
        let state = node.disk.durableState
        node.core = RaftCore(id: id, settings: options.settings, seed: rng.next(), state: state)
        if let meta = state.snapshot, let bytes = node.disk.snapshots[Disk.SnapshotKey(meta)],
            let restored = try? KeyValueState(deserializing: bytes)
        {
            node.state = restored
        } else {
            node.state = KeyValueState()
        }
        node.receiving = nil
        commitSeen[id] = node.core!.commitIndex
        nodes[id] = node
        drain(id)
        log("start \(id) term=\(state.hardState.term) log=\(state.log.firstIndex)...\(state.log.lastIndex) snapshot=\(state.snapshot.map { "\($0.index)" } ?? "-")")
        queue.push(.tick(id, incarnation: node.incarnation), at: now + 1 + Int(rng.next() % UInt64(options.tickMs)))
    }

    private func crash(_ id: NodeID) {
        guard var node = nodes[id], node.core != nil else { return }
        node.core = nil
        node.receiving = nil
        node.incarnation += 1
        nodes[id] = node
        // A chase is of one incarnation: a node down while the leader compacted needs a new
        // snapshot for that reason alone (seed 968 counted an install from before its crash).
        installsSinceReplicating[id] = nil
        result.crashes += 1
        pending = pending.filter { $0.key.node != id }
        log("crash \(id)")
    }

    /// Carries out a node's actions in order, checking the shell contract and the invariants.
    private func drain(_ id: NodeID) {
        guard var node = nodes[id], var core = node.core else { return }
        let actions = core.takeActions()
        node.core = core
        // A step sends a follower at most a window of chunks: a leader that queued the rest
        // of a file at once (thousands of reads, on a real node's loop) stops its heartbeats.
        var chunks: [NodeID: Int] = [:]
        for case let .sendSnapshotChunk(to, _, _, _, _, _) in actions { chunks[to, default: 0] += 1 }
        for (to, n) in chunks.sorted(by: { $0.key < $1.key }) where n > max(1, core.settings.snapshotWindow) {
            invariants.fail(.shell, now, "\(id) queued \(n) chunks to \(to) in one step, over its window of \(core.settings.snapshotWindow)")
        }
        var crashAt = Int.max
        if faultsOn && options.crashes && rng.chance(options.midStepCrashRate) && !actions.isEmpty {
            crashAt = Int(rng.next() % UInt64(actions.count))
        }
        for (i, action) in actions.enumerated() {
            if i == crashAt {
                nodes[id] = node
                crash(id)
                queue.push(.restart(id), at: now + Int.random(in: options.downtime, using: &rng))
                return
            }
            perform(action, on: &node)
            if node.exited { break }
        }
        nodes[id] = node
        // Carrying out the actions may have fed the core again (a snapshot file gone).
        if let core = node.core, !core.pendingActionsIsEmpty {
            drain(id)
            return
        }
        if let core = node.core {
            invariants.checkConfigurations(core, time: now)
        }
    }

    private func perform(_ action: Action, on node: inout SimulatedNode) {
        let id = node.id
        switch action {
        case .saveHardState, .appendLog, .truncateLog, .compactLog:
            node.disk.persist(action, by: id, time: now, invariants: &invariants)
        case .send(let m):
            transmit(m)
        case let .sendSnapshotChunk(to, term, meta, offset, length, done):
            switch node.disk.snapshotChunk(from: id, to: to, term: term, meta, offset: offset, length: length, done: done, time: now, invariants: &invariants) {
            case let .message(m)?: transmit(m)
            case .fileGone?: node.core!.snapshotSendFailed(to: to, meta, reason: "file deleted")
            case nil: break
            }
        case .apply(let entries):
            for e in entries {
                guard e.index == node.state.appliedIndex + 1 else {
                    invariants.fail(.shell, now, "\(id) applies \(e.index) after \(node.state.appliedIndex)")
                    return
                }
                node.state.apply(e)
                let key = PendingKey(node: id, index: e.index)
                if let p = pending.removeValue(forKey: key), p.incarnation == node.incarnation, p.term == e.term {
                    acknowledged[p.key] = max(acknowledged[p.key] ?? 0, e.index)
                    result.writesAcknowledged += 1
                }
            }
            invariants.applied(node.state.appliedIndex, digest: node.state.digest, by: id, time: now)
        case let .takeSnapshot(index, term, configuration):
            guard node.state.appliedIndex == index else {
                invariants.fail(.shell, now, "\(id) asked to snapshot at \(index) with state at \(node.state.appliedIndex)")
                return
            }
            if rng.chance(Self.takeFailure) {
                queue.push(.snapshotTakeFailed(id, incarnation: node.incarnation), at: now + Int.random(in: 0...Self.takeTime, using: &rng))
                return
            }
            let bytes = node.state.serialized()
            let meta = SnapshotMetadata(index: index, term: term, configuration: configuration, size: UInt64(bytes.count))
            queue.push(.snapshotTaken(id, incarnation: node.incarnation, meta, bytes), at: now + Int.random(in: 0...Self.takeTime, using: &rng))
        case let .beginSnapshotReceive(_, meta):
            node.receiving = (meta, [])
        case let .writeSnapshotChunk(meta, offset, data):
            guard var r = node.receiving, r.meta == meta, offset == UInt64(r.bytes.count) else {
                invariants.fail(.shell, now, "\(id) writes a chunk at \(offset) of \(meta) out of order")
                return
            }
            r.bytes += data
            node.receiving = r
        case .installSnapshot(let meta):
            guard let r = node.receiving, r.meta == meta, UInt64(r.bytes.count) == meta.size else {
                invariants.fail(.shell, now, "\(id) installs \(meta) with \(node.receiving?.bytes.count ?? -1) bytes received")
                return
            }
            queue.push(.snapshotInstalled(id, incarnation: node.incarnation, meta), at: now + Int.random(in: options.installTime, using: &rng))
        case .abortSnapshotReceive:
            node.receiving = nil
        case .observe(let o):
            observe(o, on: &node)
        case .readReady, .readFailed:
            break  // this simulator's clients only write (MachineSimulation's also read)
        }
    }

    private func observe(_ o: Observation, on node: inout SimulatedNode) {
        guard let core = node.core else { return }
        switch o {
        case .role(.leader, _, let term):
            result.elections += 1
            log("\(node.id) leads term \(term)")
            invariants.leaderElected(node.id, term: term, log: core.log, time: now)
            if faultsOn && options.crashes && rng.chance(options.newLeaderCrashRate) {
                queue.push(.crash(node.id, incarnation: node.incarnation), at: now + Int.random(in: 2...3 * options.maxDelay, using: &rng))
            }
        case .role(let role, let leader, _):
            log("\(node.id) is \(role.rawValue) in term \(core.term), leader \(leader ?? "-")")
        case .commit(let index):
            invariants.committed(upTo: index, from: commitSeen[node.id] ?? 0, log: core.log, by: node.id, inTerm: core.term, time: now)
            commitSeen[node.id] = index
        case let .config(index, c, committed):
            if committed && index > 0 && core.role == .leader { result.configChanges += 1 }
            log("\(node.id) config \(index) \(c) \(committed ? "committed" : "appended")")
        case .removed:
            log("\(node.id) removed; exits")
            node.core = nil
            node.exited = true
            node.incarnation += 1
        case .error(let what, let detail):
            log("\(node.id) error \(what): \(detail)")
        default:
            break
        }
    }

    // MARK: Network

    private func transmit(_ m: Message) {
        for at in network.arrivals(from: m.from, to: m.to, now: now, options: options, rng: &rng) { queue.push(.deliver(m), at: at) }
    }

    // MARK: Faults and load

    private var runningIDs: [NodeID] { nodes.keys.sorted().filter { nodes[$0]!.core != nil } }

    private var currentLeader: NodeID? {
        runningIDs.filter { nodes[$0]!.core!.role == .leader }.max { nodes[$0]!.core!.term < nodes[$1]!.core!.term }
    }

    private func injectFault() {
        let roll = rng.next() % 100
        switch roll {
        case 0..<25 where options.crashes:
            let running = runningIDs
            guard let victim = running.randomElement(using: &rng) else { return }
            crash(victim)
            queue.push(.restart(victim), at: now + Int.random(in: options.downtime, using: &rng))
        case 25..<35 where options.crashes:
            guard let leader = currentLeader else { return }
            crash(leader)
            queue.push(.restart(leader), at: now + Int.random(in: options.downtime, using: &rng))
        case 35..<55 where options.partitions:
            let all = nodes.keys.sorted().filter { !nodes[$0]!.exited }
            let far = network.partition(all, rng: &rng)
            result.partitions += 1
            log("partition \(far)")
            queue.push(.heal, at: now + Int.random(in: 100...2500, using: &rng))
        case 55..<62 where options.partitions:
            guard let leader = currentLeader else { return }
            network.isolate(leader)
            result.partitions += 1
            log("isolate \(leader)")
            queue.push(.heal, at: now + Int.random(in: 200...2500, using: &rng))
        case 62..<90 where options.membershipChanges:
            changeMembership()
        case 90..<100:
            guard let id = runningIDs.randomElement(using: &rng) else { return }
            var node = nodes[id]!
            _ = node.core!.requestSnapshot()
            nodes[id] = node
            drain(id)
        default:
            break
        }
    }

    private func changeMembership() {
        guard let leaderID = currentLeader, var leader = nodes[leaderID], let core = leader.core else { return }
        let config = core.latestConfiguration
        let change: ConfigurationChange
        let roll = rng.next() % 100
        if config.voters.count < 7 && (roll < 40 || config.voters.count < 3) {
            // Add a new node, or bring back a removed one with its data wiped.
            let gone = nodes.keys.sorted().filter { !config.isMember($0) && !(nodes[$0]!.isRunning && !nodes[$0]!.exited) }
            let id: NodeID
            if let back = gone.randomElement(using: &rng), rng.chance(0.5) {
                id = back
            } else {
                id = "n\(nextNodeNumber)"
                nextNodeNumber += 1
            }
            change = .addLearner(id, address: "sim://\(id)", promote: true)
            guard case .success = leader.core!.proposeChange(change) else { return }
            var fresh = SimulatedNode(id: id, disk: Disk())
            fresh.incarnation = (nodes[id]?.incarnation ?? 0) + 1
            nodes[id] = fresh
            start(id)
        } else if config.voters.count > 3 || (config.voters.count == 3 && !config.learners.isEmpty) {
            let candidates = config.learners.isEmpty || roll % 2 == 0 ? config.voters : config.learners
            guard let victim = candidates.randomElement(using: &rng) else { return }
            change = .remove(victim)
            guard case .success = leader.core!.proposeChange(change) else { return }
        } else {
            return
        }
        log("\(leaderID) proposes \(change)")
        nodes[leaderID] = leader
        drain(leaderID)
    }

    private func proposeWrites() {
        guard let leaderID = currentLeader, var leader = nodes[leaderID] else { return }
        let count = Int.random(in: 1...3, using: &rng)
        var commands: [[UInt8]] = []
        var keys: [String] = []
        for _ in 0..<count {
            clientSeq += 1
            let key = "k\(rng.next() % 10)"
            keys.append(key)
            commands.append(KeyValueState.command(key: key, value: "v\(clientSeq)" + String(repeating: "x", count: options.valueBytes)))
        }
        guard case let .success((first, term)) = leader.core!.propose(commands) else { return }
        for (i, key) in keys.enumerated() {
            pending[PendingKey(node: leaderID, index: first + LogIndex(i))] = PendingWrite(term: term, key: key, incarnation: leader.incarnation)
        }
        nodes[leaderID] = leader
        drain(leaderID)
    }

    // MARK: The end

    /// What keeps the cluster from having converged: a leader, its configuration committed,
    /// every member running with the leader's commit applied and the same state, and every
    /// acknowledged write in that state.
    private func convergenceProblems() -> [(Violation.Kind, String)] {
        var problems: [(Violation.Kind, String)] = []
        guard let leaderID = currentLeader, let leader = nodes[leaderID]!.core else {
            return [(.liveness, "no leader after healing")]
        }
        let config = leader.configuration
        result.finalCommitIndex = leader.commitIndex
        result.finalMembers = config.members
        if leader.commitIndex < leader.log.lastIndex {
            problems.append((.liveness, "\(leaderID) committed \(leader.commitIndex) of \(leader.log.lastIndex)"))
        }
        if leader.latestConfigurationIndex > leader.commitIndex {
            problems.append((.liveness, "\(leaderID)'s configuration \(leader.latestConfigurationIndex) is not committed (commit \(leader.commitIndex))"))
        }
        for id in config.members {
            guard let node = nodes[id], let core = node.core else {
                problems.append((.liveness, "member \(id) is not running"))
                continue
            }
            if core.appliedIndex != leader.commitIndex || node.state.digest != nodes[leaderID]!.state.digest {
                problems.append((.liveness, "\(id) applied \(core.appliedIndex) (digest \(node.state.digest.hex16)), leader \(leaderID) committed \(leader.commitIndex) (digest \(nodes[leaderID]!.state.digest.hex16))"))
            }
            // Every acknowledged write is in the final state, or a later write to its key is.
            for (key, index) in acknowledged.sorted(by: { $0.key < $1.key }) where (node.state.values[key]?.index ?? 0) < index {
                problems.append((.lostWrite, "\(id)'s \(key) was written at \(node.state.values[key]?.index ?? 0), an acknowledged write at \(index)"))
            }
        }
        return problems
    }
}
