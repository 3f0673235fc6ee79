import Raft
import RaftNodeWire

/// A client request's handle: the host's, to find the connection and the `id` to answer.
public typealias ClientToken = UInt64

/// Milliseconds on the host's clock: monotonic in a process, simulated in the simulator.
public typealias Millis = Int64

/// What reaches a node from outside: the network, clients, and the outcomes of the work it
/// asked its host to do.
public enum NodeInput: Sendable {
    case message(Message)
    case client(ClientToken, ClientOp)
    case snapshotTaken(SnapshotMetadata, ms: Int)
    case snapshotTakeFailed(String)
    /// A received snapshot is whole, checked and durable under its final name; `state` is
    /// what it holds.
    case snapshotRestored(SnapshotMetadata, KeyValueStore, ms: Int, note: String)
    case snapshotRestoreFailed(SnapshotMetadata, String)
    /// A chunk of a snapshot being sent could not be read.
    case snapshotSendFailed(to: NodeID, SnapshotMetadata, reason: String)
    /// Something the host saw and the node's account should say (bad input, refused peers).
    case error(what: String, detail: String)
    /// A peer this node has no address for connected, saying where it listens (its hello).
    case peerAddress(NodeID, String)
    /// A peer's connection to this node closed from its side (its process ended): a
    /// follower of that peer campaigns after a few ticks (`RaftCore.peerDisconnected`).
    case peerDisconnected(NodeID)
    /// SIGTERM, stdin closed: stop.
    case stop(reason: String)
    /// The storage failed: stop, exit 1.
    case storageFailed(String)
}

/// What a node asks its host to do, in order.
///
/// The ordering contract (the core's, `Action`, carried through): a `.persist` is durable
/// before any later output that is not a `.persist` is carried out, but for a leader's
/// AppendEntries that reveals no commit of an unsynced entry. A host persists a run of them,
/// syncs once, then carries out the rest in order: `CarryOutPlan` gives the steps.
public enum NodeOutput: Sendable {
    /// `saveHardState`, `appendLog`, `truncateLog` or `compactLog`.
    case persist(Action)
    case send(Message)
    /// Read `length` bytes at `offset` of the snapshot file and send them (or report
    /// `.snapshotSendFailed`).
    case sendSnapshotChunk(to: NodeID, term: Term, snapshot: SnapshotMetadata, offset: UInt64, length: Int, done: Bool)
    case answer(ClientToken, ClientAnswer)
    /// An events.jsonl line; the host adds `ts` and the node's name.
    case event(NodeEvent, term: Term)
    /// A line of node.log.
    case note(String)
    /// Write `state` as the snapshot at `index`, off the node's turn, and report
    /// `.snapshotTaken` or `.snapshotTakeFailed`.
    case takeSnapshot(index: LogIndex, term: Term, configuration: Configuration, state: KeyValueStore)
    case beginSnapshotReceive(from: NodeID, snapshot: SnapshotMetadata)
    case writeSnapshotChunk(snapshot: SnapshotMetadata, offset: UInt64, data: [UInt8])
    /// Every chunk is in: finish, check, make durable and report `.snapshotRestored` or
    /// `.snapshotRestoreFailed`. A host that receives no such snapshot reports the failure.
    case installSnapshot(SnapshotMetadata)
    case abortSnapshotReceive
    /// Snapshot files that transfers still read; the others may be closed.
    case snapshotFilesInUse(Set<LogIndex>)
    /// The snapshot taken is the newest now: delete (or archive) the older files. Not before:
    /// until the machine has it, it offers the one before to a peer, whose file must be there.
    case retireSnapshots(olderThan: SnapshotMetadata)
    /// Where each peer is. Any peer of the cluster may send: a member cannot know every
    /// member of configurations newer than its log (see `updatePeers`).
    case setPeers([NodeID: String])
}

/// One member's decisions: the protocol core plus everything around it that the node
/// decides: client requests and their deadlines, pending writes, snapshot work, the events
/// and notes it writes, what `status` says. No I/O, no clock, no threads: a host (the process
/// runtime, or the simulator) feeds it inputs and the time, and carries out its outputs.
///
/// Use: `step(_:now:)` for each input, `advance(to:)` whenever the time reaches
/// `nextWake` (or later), then `takeOutputs()` and carry them out in order. `stopReason` is
/// set once the node should stop; the host then calls `shutdown(now:)` and carries out what
/// that gives.
public struct NodeMachine: Sendable {
    public struct Config: Sendable {
        public var name: NodeID
        public var settings: Settings
        /// Milliseconds of one tick of the core's clock.
        public var tickMs: Int
        /// A client request not answered in this many milliseconds is answered `timeout`.
        public var requestTimeoutMs: Int
        /// Peer addresses known at the start (`--member`).
        public var initialAddresses: [NodeID: String]
        /// The planted fault of the trust issue: a node restarted on data ignores snapshot
        /// offers (only in a -DRAFT_FAULTS build, with RAFT_FAULT set).
        public var ignoreSnapshotAfterRestart = false
        /// The planted fault `stale-reads`: every node answers `get` at once from its own
        /// state, whatever its role (-DRAFT_FAULTS builds, or a simulator test).
        public var answerReadsLocally = false
        /// Write an `apply` event for each batch of entries applied (nodes the harness
        /// starts: its checker verifies the order, SPEC section 4).
        public var writeApplyEvents = false

        public init(name: NodeID, settings: Settings, tickMs: Int, requestTimeoutMs: Int, initialAddresses: [NodeID: String]) {
            self.name = name
            self.settings = settings
            self.tickMs = tickMs
            self.requestTimeoutMs = requestTimeoutMs
            self.initialAddresses = initialAddresses
        }
    }

    public let config: Config
    public private(set) var core: RaftCore
    public private(set) var store: KeyValueStore
    /// Set when the node should stop: the host calls `shutdown(now:)`.
    public private(set) var stopReason: String?
    public private(set) var exitCode: Int32 = 0
    @usableFromInline var outputs: [NodeOutput] = []

    private struct Pending {
        var term: Term
        var token: ClientToken
        var deadline: Millis
    }
    /// Client requests waiting for their entries, by index.
    private var pendingWrites: [LogIndex: Pending] = [:]
    /// A `get` read by ReadIndex: waiting for its confirmation round (`index` nil), then for
    /// the state applied through `index`.
    private struct PendingRead {
        var token: ClientToken
        var key: String
        var deadline: Millis
        var index: LogIndex?
    }
    private var pendingReads: [UInt64: PendingRead] = [:]
    private var nextReadID: UInt64 = 1
    /// Confirmed reads that wait for the state applied to reach their index.
    private var readsAwaitingApply = 0
    /// The index `store` holds the state of (the core's applied index may be ahead while its
    /// actions are being carried out).
    private var storeIndex: LogIndex = 0
    private struct PendingChange {
        var node: NodeID
        var adding: Bool
        var index: LogIndex
        var token: ClientToken
        var deadline: Millis
    }
    private var pendingChanges: [PendingChange] = []
    private var pendingSnapshots: [(index: LogIndex, token: ClientToken, deadline: Millis)] = []
    /// The index and state bytes of the snapshot being taken, for the core's rule of when
    /// to take the next (`Settings.snapshotAmortizeFrom`).
    private var taking: (index: LogIndex, stateBytes: Int)?

    private var sendStarted: [NodeID: Millis] = [:]
    /// The leader a snapshot being installed comes from.
    private var installingFrom: NodeID?
    private var addressBook: [NodeID: String]
    /// When `advance(to:)` has work next: the next tick of the core's clock. Stored, not
    /// computed, so that a host reads it without copying the machine (hosts hold it in a class).
    public private(set) var nextWake: Millis
    private var lastCommitEvent: Millis
    private var commitToReport: LogIndex?
    private var lastFromLeader: Millis?
    private let startedAt: Millis
    private var firstEntriesAt: Millis?
    /// This node started on existing data (a log or a snapshot past the bootstrap one).
    private let restartedOnData: Bool

    /// A node on `state` (its files) with `store` restored from its newest snapshot, at `now`.
    public init(config: Config, seed: UInt64, state: DurableState, store: KeyValueStore, now: Millis) {
        self.config = config
        self.store = store
        storeIndex = state.snapshot?.index ?? 0
        core = RaftCore(id: config.name, settings: config.settings, seed: seed, state: state)
        addressBook = config.initialAddresses
        restartedOnData = state.log.lastIndex > 0 || (state.snapshot?.index ?? 0) > 0
        startedAt = now
        lastCommitEvent = now
        nextWake = now + Millis(config.tickMs)
        emit(.start(lastIndex: core.log.lastIndex, commitIndex: core.commitIndex, snapshotIndex: core.snapshot?.index ?? 0))
        if !core.configuration.isEmpty {
            // The configuration in force is the log's latest; it is committed only when the
            // commit index known at the start reaches it (check 9 caught a restarted node
            // calling an entry committed that the next leader replaced).
            emit(configEvent(core.configurationIndex, core.configuration, committed: core.configurationIndex <= core.commitIndex))
        }
        updatePeers()
        drainCore(now: now)
    }

    /// When `advance(to:)` should next be called.
    @inlinable public var pendingOutputs: Bool { !outputs.isEmpty }

    public mutating func takeOutputs() -> [NodeOutput] {
        defer { outputs.removeAll(keepingCapacity: true) }
        return outputs
    }

    private mutating func emit(_ event: NodeEvent) { outputs.append(.event(event, term: core.term)) }
    private mutating func note(_ text: String) { outputs.append(.note(text)) }
    private mutating func answer(_ token: ClientToken, _ a: ClientAnswer) { outputs.append(.answer(token, a)) }

    // MARK: Inputs

    /// The inputs of one turn of the host, in order, as `step(_:now:)` takes each, but for
    /// runs of writes: the puts and deletes of clients that follow one another are proposed
    /// as one batch of entries (one append, one AppendEntries to each follower, one sync on
    /// each, instead of one of each per write; 64 clients gave a follower two syncs per
    /// AppendEntries' three entries).
    public mutating func step(_ inputs: [NodeInput], now: Millis) {
        var writes: [(token: ClientToken, command: Command)] = []
        for input in inputs {
            if stopReason == nil, case let .client(token, op) = input, let command = Command(write: op) {
                writes.append((token, command))
                continue
            }
            if !writes.isEmpty {
                clientWrites(writes, now: now)
                writes.removeAll()
            }
            step(input, now: now)
        }
        if !writes.isEmpty { clientWrites(writes, now: now) }
    }

    public mutating func step(_ input: NodeInput, now: Millis) {
        if stopReason != nil {
            // After the stop: a client request is answered shutting-down (nothing was done
            // for it); anything else is dropped.
            if case let .client(token, _) = input { answer(token, .failed(.shuttingDown)) }
            return
        }
        switch input {
        case let .message(m):
            if m.from == core.leader { lastFromLeader = now }
            if firstEntriesAt == nil {
                switch m.body {
                case .appendEntries, .snapshotRequest, .snapshotRecoveryRequest:
                    firstEntriesAt = now
                    note("first \(m.body.kindName) from \(m.from) \(now - startedAt) ms after the start")
                default: break
                }
            }
            if restartedOnData, config.ignoreSnapshotAfterRestart, case .snapshotRequest = m.body { return }
            core.step(m)
        case let .client(token, op):
            client(token, op, now: now)
        case let .snapshotTaken(meta, ms):
            emit(.snapshotTaken(index: meta.index, snapshotTerm: meta.term, bytes: meta.size, ms: ms))
            let stateBytes = taking.flatMap { $0.index == meta.index ? UInt64($0.stateBytes) : nil }
            taking = nil
            core.snapshotTaken(meta, stateBytes: stateBytes)
            // The newest it holds (this one, unless it refused it as stale).
            if let newest = core.snapshot { outputs.append(.retireSnapshots(olderThan: newest)) }
            for p in pendingSnapshots where p.index <= meta.index { answer(p.token, .done(index: meta.index)) }
            pendingSnapshots.removeAll { $0.index <= meta.index }
            reportFilesInUse()
            requestSnapshotForWaitingClients()
        case .snapshotTakeFailed(let reason):
            core.snapshotFailed(nil, reason: reason)
            requestSnapshotForWaitingClients()
        case let .snapshotRestored(meta, restored, ms, text):
            let from = installingFrom ?? ""
            installingFrom = nil
            note(text)
            // The core says whether it still waits for this install; only then is the state
            // ours (the entries after it are applied onto it as the core's actions come).
            guard core.snapshotInstalled(meta) else {
                note("snapshot \(meta.index) restored but no longer awaited; its state is discarded")
                break
            }
            store = restored
            storeIndex = meta.index
            emit(.snapshotInstalled(from: from, index: meta.index, snapshotTerm: meta.term, bytes: meta.size, ms: ms))
        case let .snapshotRestoreFailed(meta, reason):
            installingFrom = nil
            core.snapshotFailed(meta, reason: reason)
        case let .snapshotSendFailed(to, meta, reason):
            core.snapshotSendFailed(to: to, meta, reason: reason)
        case let .error(what, detail):
            emit(.error(what: what, detail: detail))
        case let .peerDisconnected(peer):
            if core.leader == peer, core.role != .leader {
                note("the connection from \(peer), the leader, closed: its process ended; campaigning in 1 + 2 x rank ticks")
            }
            core.peerDisconnected(peer)
        case let .peerAddress(peer, address):
            // A configuration's address wins; this one only fills a gap until the log names
            // the peer (a leader added while this member was cut off must be answered).
            guard peer != config.name, addressBook[peer] == nil else { break }
            addressBook[peer] = address
            note("\(peer) connected from \(address), which no configuration here names yet: answering it there")
            updatePeers()
        case let .stop(reason):
            stopReason = reason
        case let .storageFailed(detail):
            emit(.error(what: "storage", detail: detail))
            note("storage failed: \(detail)")
            stopReason = "storage failed"
            exitCode = 1
        }
        drainCore(now: now)
    }

    private mutating func client(_ token: ClientToken, _ op: ClientOp, now: Millis) {
        let deadline = now + Millis(config.requestTimeoutMs)
        if config.answerReadsLocally, case let .get(key) = op {
            answer(token, .read(value: store[key], index: core.appliedIndex))
            return
        }
        switch op {
        case let .get(key):
            // ReadIndex: no log entry; answered once the core confirms it still leads and
            // the state applied reaches the commit index it had when the read came.
            let id = nextReadID
            nextReadID += 1
            if core.readIndex(id) {
                pendingReads[id] = PendingRead(token: token, key: key, deadline: deadline, index: nil)
            } else {
                answer(token, .failed(.notLeader, leader: core.leader))
            }
        case .put, .delete:
            if let command = Command(write: op) { propose([(token, command)], now: now) }
        case .status:
            answer(token, .status(status()))
        case .snapshot:
            let index = core.requestSnapshot()
            if index <= (core.snapshot?.index ?? 0) {
                answer(token, .done(index: index))
            } else {
                pendingSnapshots.append((index, token, deadline))
            }
        case let .add(node, address):
            propose(.addLearner(node, address: address, promote: true), node: node, adding: true, token, deadline)
        case let .remove(node):
            propose(.remove(node), node: node, adding: false, token, deadline)
        }
    }

    /// Writes of clients, one after another in a turn: one step's work.
    private mutating func clientWrites(_ writes: [(token: ClientToken, command: Command)], now: Millis) {
        propose(writes, now: now)
        drainCore(now: now)
    }

    /// Proposes the commands of writes as consecutive entries; each request waits on its own.
    private mutating func propose(_ writes: [(token: ClientToken, command: Command)], now: Millis) {
        let deadline = now + Millis(config.requestTimeoutMs)
        switch core.propose(writes.map { $0.command.encoded() }) {
        case let .success((first, term)):
            for (k, w) in writes.enumerated() {
                let index = first + LogIndex(k)
                // An index is never taken twice while a request waits on it (the waits end
                // when this node stops leading); should one be, the earlier request is not
                // left without an answer.
                if let earlier = pendingWrites[index] { answer(earlier.token, .failed(.leadershipLost, leader: core.leader)) }
                pendingWrites[index] = Pending(term: term, token: w.token, deadline: deadline)
            }
        case .failure:
            for w in writes { answer(w.token, .failed(.notLeader, leader: core.leader)) }
        }
    }

    /// A `snapshot` request that came while another snapshot was being taken (one the
    /// threshold asked for, at a lower index) is answered by none yet: ask for the next one
    /// now, or it would wait for the threshold and time out.
    private mutating func requestSnapshotForWaitingClients() {
        guard !pendingSnapshots.isEmpty else { return }
        _ = core.requestSnapshot()
    }

    private mutating func propose(_ change: ConfigurationChange, node: NodeID, adding: Bool, _ token: ClientToken, _ deadline: Millis) {
        switch core.proposeChange(change) {
        case let .success((index, _)):
            pendingChanges.append(PendingChange(node: node, adding: adding, index: index, token: token, deadline: deadline))
        case .failure(.notLeader(let leader)):
            answer(token, .failed(.notLeader, leader: leader))
        case .failure(.configChangeInProgress), .failure(.leaderNotReady):
            answer(token, .failed(.configChangeInProgress))
        case .failure(.invalidChange(let e)):
            answer(token, .failed(.badRequest, detail: e.description))
        }
    }

    /// What `status` answers (SPEC section 5).
    public func status() -> StatusReport {
        let c = core.configuration
        return StatusReport(
            name: config.name, role: Self.roleName(core.role), term: core.term, leader: core.leader, commitIndex: core.commitIndex,
            appliedIndex: core.appliedIndex, lastIndex: core.log.lastIndex, snapshotIndex: core.snapshot?.index ?? 0,
            members: c.voters, learners: c.learners, configIndex: core.configurationIndex, digest: store.digestHex,
            snapshotting: core.isReceivingSnapshot || core.progress.values.contains { $0.state == .snapshot },
            peers: core.role == .leader ? peers() : nil)
    }

    /// The leader's view of each other member and learner, by name.
    private func peers() -> [(NodeID, PeerProgressReport)] {
        core.progress.keys.sorted().map { peer in
            let pr = core.progress[peer]!
            var transfer: PeerProgressReport.Transfer?
            if pr.state == .snapshot, let t = pr.transfer {
                transfer = .init(index: t.snapshot.index, offset: t.ackedOffset, bytes: t.snapshot.size, accepted: t.accepted, installing: t.installing)
            }
            return (
                peer,
                PeerProgressReport(
                    state: pr.state.rawValue, match: pr.match, next: pr.next,
                    lastHeardMs: Int64(pr.ticksSinceHeard(at: core.ticks)) * Int64(config.tickMs), transfer: transfer)
            )
        }
    }

    /// `role` as events and `status` name it: a pre-candidate is a candidate.
    public static func roleName(_ role: Role) -> String { role == .preCandidate ? "candidate" : role.rawValue }

    // MARK: Time

    /// Every tick that fell due by `now`, then the deadlines and the commit event.
    ///
    /// At most a heartbeat interval's worth of ticks at once: a host's turn made long by an
    /// fsync must not slow the clock (a leader ticking once a 40 ms turn would send
    /// heartbeats every 200 ms, and its followers would call elections), but the inputs
    /// just handled reset the election timer, and a longer burst after a stall of this
    /// node's own would call an election for nothing.
    public mutating func advance(to now: Millis) {
        guard stopReason == nil, now >= nextWake else { return }
        let tick = Millis(config.tickMs)
        let due = (now - nextWake) / tick + 1
        for _ in 0..<min(due, Millis(config.settings.heartbeatTicks)) { core.tick() }
        nextWake += due * tick
        housekeeping(now: now)
        drainCore(now: now)
    }

    private mutating func housekeeping(now: Millis) {
        if let c = commitToReport, now - lastCommitEvent >= Millis(config.tickMs * config.settings.heartbeatTicks) {
            emit(.commit(index: c))
            commitToReport = nil
            lastCommitEvent = now
        }
        for (index, p) in pendingWrites.sorted(by: { $0.key < $1.key }) where p.deadline < now {
            answer(p.token, .failed(.timeout))
            pendingWrites[index] = nil
        }
        var timedOut: [ClientToken] = []
        for (id, r) in pendingReads.sorted(by: { $0.key < $1.key }) where r.deadline < now {
            timedOut.append(r.token)
            removeRead(id)
        }
        pendingChanges.removeAll { p in
            guard p.deadline < now else { return false }
            timedOut.append(p.token)
            return true
        }
        pendingSnapshots.removeAll { p in
            guard p.deadline < now else { return false }
            timedOut.append(p.token)
            return true
        }
        for t in timedOut { answer(t, .failed(.timeout)) }
    }

    // MARK: The core's actions

    /// Turns the core's actions into outputs; applies entries and writes events here.
    private mutating func drainCore(now: Millis) {
        while !core.pendingActionsIsEmpty {
            for action in core.takeActions() {
                switch action {
                case .saveHardState, .appendLog, .truncateLog, .compactLog:
                    outputs.append(.persist(action))
                case let .send(m):
                    outputs.append(.send(m))
                case let .sendSnapshotChunk(to, term, meta, offset, length, done):
                    outputs.append(.sendSnapshotChunk(to: to, term: term, snapshot: meta, offset: offset, length: length, done: done))
                case let .apply(entries):
                    apply(entries)
                    if readsAwaitingApply > 0 { answerReads() }
                case let .takeSnapshot(index, term, configuration):
                    taking = (index, store.byteCount)
                    outputs.append(.takeSnapshot(index: index, term: term, configuration: configuration, state: store))
                case let .beginSnapshotReceive(from, meta):
                    outputs.append(.beginSnapshotReceive(from: from, snapshot: meta))
                case let .writeSnapshotChunk(meta, offset, data):
                    outputs.append(.writeSnapshotChunk(snapshot: meta, offset: offset, data: data))
                case let .installSnapshot(meta):
                    installingFrom = core.leader
                    outputs.append(.installSnapshot(meta))
                case .abortSnapshotReceive:
                    outputs.append(.abortSnapshotReceive)
                case let .observe(o):
                    observe(o, now: now)
                case let .readReady(id, index):
                    guard let r = pendingReads[id] else { break }
                    if index <= storeIndex {
                        pendingReads[id] = nil
                        answer(r.token, .read(value: store[r.key], index: storeIndex))
                    } else {
                        pendingReads[id]?.index = index
                        readsAwaitingApply += 1
                    }
                case let .readFailed(id):
                    // SPEC section 5: a leader that steps down answers what it accepted
                    // leadership-lost (for a read, nothing changed either way).
                    if let r = removeRead(id) { answer(r.token, .failed(.leadershipLost, leader: core.leader)) }
                }
            }
        }
    }

    /// Answers the confirmed reads whose index the applied state has now reached, from it.
    private mutating func answerReads() {
        let applied = storeIndex
        for (id, r) in pendingReads.sorted(by: { $0.key < $1.key }) {
            guard let index = r.index, index <= applied else { continue }
            removeRead(id)
            answer(r.token, .read(value: store[r.key], index: applied))
        }
    }

    /// Forgets a read (answered, timed out, failed), keeping the count of those that wait
    /// for the applied state.
    @discardableResult
    private mutating func removeRead(_ id: UInt64) -> PendingRead? {
        guard let r = pendingReads.removeValue(forKey: id) else { return nil }
        if r.index != nil { readsAwaitingApply -= 1 }
        return r
    }

    private mutating func apply(_ entries: [Entry]) {
        if config.writeApplyEvents, let first = entries.first, let last = entries.last {
            emit(.apply(from: first.index, index: last.index, term: last.term))
        }
        for e in entries {
            storeIndex = max(storeIndex, e.index)
            var read: String?? = nil
            if e.type == .command {
                do {
                    let command = try Command(decoding: e.payload)
                    command.apply(to: &store)
                    if case let .get(key) = command { read = .some(store[key]) }
                } catch {
                    emit(.error(what: "apply", detail: "entry \(e.index): \(error)"))
                }
            }
            guard let p = pendingWrites.removeValue(forKey: e.index) else { continue }
            if p.term != e.term {
                // Another leader's entry took this index. The request itself may still be
                // committed elsewhere (a leader of a later term can carry it): unknown.
                answer(p.token, .failed(.leadershipLost, leader: core.leader))
            } else if let value = read {
                answer(p.token, .read(value: value, index: e.index))
            } else {
                answer(p.token, .written(index: e.index, term: e.term))
            }
        }
    }

    private func configEvent(_ index: LogIndex, _ c: Configuration, committed: Bool) -> NodeEvent {
        .config(index: index, members: c.voters, learners: c.learners, committed: committed)
    }

    private mutating func reportFilesInUse() {
        outputs.append(.snapshotFilesInUse(Set(core.progress.values.compactMap { $0.transfer?.snapshot.index })))
    }

    private mutating func observe(_ o: Observation, now: Millis) {
        switch o {
        case let .role(role, _, term):
            outputs.append(.event(.role(Self.roleName(role), preVote: role == .preCandidate), term: term))
            if role != .leader { answerLeadershipLost() }
            if role == .preCandidate || role == .candidate {
                note("campaigning: " + (lastFromLeader.map { "the last message of a leader reached the node \(now - $0) ms ago" } ?? "no leader heard from since the start"))
            }
        case let .vote(candidate, term):
            outputs.append(.event(.vote(for: candidate), term: term))
        case let .truncate(from):
            emit(.truncate(from: from))
        case let .compact(through):
            emit(.compact(through: through))
        case let .commit(index):
            commitToReport = index
        case let .config(index, c, committed):
            emit(configEvent(index, c, committed: committed))
            updatePeers()
            if committed { answerConfigChanges(index, c) }
        case let .snapshotSendStarted(to, _):
            sendStarted[to] = now
        case let .snapshotSent(to, meta):
            let ms = sendStarted.removeValue(forKey: to).map { Int(now - $0) } ?? 0
            emit(.snapshotSent(to: to, index: meta.index, snapshotTerm: meta.term, bytes: meta.size, ms: ms))
            reportFilesInUse()
        case let .snapshotAbandoned(to, meta, offset, reason):
            sendStarted[to] = nil
            emit(.snapshotAbandoned(to: to, index: meta.index, offset: offset, reason: reason))
            reportFilesInUse()
        case .snapshotInstalled:
            break  // written when the state is restored, with the time it took
        case .removed:
            stopReason = "removed"
        case let .error(what, detail):
            emit(.error(what: what, detail: detail))
        }
    }

    private mutating func answerConfigChanges(_ index: LogIndex, _ c: Configuration) {
        var answers: [(ClientToken, ClientAnswer)] = []
        pendingChanges.removeAll { p in
            guard index >= p.index else { return false }
            if p.adding ? c.isVoter(p.node) : !c.isMember(p.node) {
                answers.append((p.token, .done(index: index)))
                return true
            }
            if p.adding && !c.isMember(p.node) {
                answers.append((p.token, .failed(.notLeader, detail: "the change was overwritten")))
                return true
            }
            return false
        }
        for (t, a) in answers { answer(t, a) }
    }

    /// This node stopped leading (or stops): every request it accepted as leader and has not
    /// answered may or may not commit, and nothing here will learn which. Answered now,
    /// `leadership-lost`, rather than at its deadline.
    private mutating func answerLeadershipLost() {
        let leader = core.leader
        for (_, p) in pendingWrites.sorted(by: { $0.key < $1.key }) { answer(p.token, .failed(.leadershipLost, leader: leader)) }
        pendingWrites.removeAll()
        for p in pendingChanges { answer(p.token, .failed(.leadershipLost, leader: leader)) }
        pendingChanges.removeAll()
    }

    /// Keeps the host's address book in step with the newest configuration.
    ///
    /// No sender of the cluster is refused. A member that lost touch while members were
    /// added learns of them only from the leader, and the leader may be one of them:
    /// harness explore --sim found a member that refused the connection of such a leader,
    /// and so never caught up (harness/scenarios/found/leader-unknown-to-member).
    ///
    /// Addresses are only ever added or updated, never dropped: a member being removed must
    /// still hear the answers that commit its removal, and a node waiting to be added must
    /// reach the leader before it holds any configuration (`--member` seeds the book then).
    private mutating func updatePeers() {
        let c = core.latestConfiguration
        addressBook.merge(c.addresses) { _, new in new }
        var addresses = addressBook
        addresses[config.name] = nil
        outputs.append(.setPeers(addresses))
    }

    // MARK: Stopping

    /// The node stops: answers every request still waiting, writes its last events. The host
    /// carries out the outputs, then closes its files.
    public mutating func shutdown(now: Millis) {
        if stopReason == nil { stopReason = "stopped" }
        // Proposed, so perhaps committed: their outcome is unknown to the client.
        answerLeadershipLost()
        for (_, r) in pendingReads.sorted(by: { $0.key < $1.key }) { answer(r.token, .failed(.leadershipLost, leader: core.leader)) }
        pendingReads.removeAll()
        readsAwaitingApply = 0
        for p in pendingSnapshots { answer(p.token, .failed(.shuttingDown)) }
        pendingSnapshots.removeAll()
        if let c = commitToReport { emit(.commit(index: c)) }
        commitToReport = nil
        outputs.append(.abortSnapshotReceive)
        emit(.stop(reason: stopReason ?? "stopped"))
    }
}
