import Raft

// A small deterministic harness for unit tests of RaftCore: a few cores by name, each with
// an in-memory disk, and a message queue that a test delivers explicitly (all of it, only
// what a predicate picks, or nothing to or from a partitioned node). Nothing is random but
// the cores' own seeded election timeouts, and nothing happens unless the test says so.

extension Settings {
    /// Default settings with the switches a test cares about.
    static func test(preVote: Bool = true, checkQuorum: Bool = true, _ adjust: (inout Settings) -> Void = { _ in }) -> Settings {
        var s = Settings()
        s.preVote = preVote
        s.checkQuorum = checkQuorum
        adjust(&s)
        return s
    }
}

/// What one node has: its core, its disk, and what it did.
struct TestNode {
    var core: RaftCore
    /// What the core asked to persist, as the shell made it durable.
    var hardState: HardState
    var log: RaftLog
    var snapshot: SnapshotMetadata?
    /// Snapshot files by index (the bytes a transfer streams).
    var files: [LogIndex: [UInt8]] = [:]
    /// Every entry handed to the state machine, in order.
    var applied: [Entry] = []
    var observations: [Observation] = []
    /// Reads (`readIndex`) confirmed, with their index, and reads failed.
    var readsReady: [(id: UInt64, index: LogIndex)] = []
    var readsFailed: [UInt64] = []
    /// Every action the core produced, in order.
    var history: [Action] = []
    /// Carry out `takeSnapshot` at once (else it waits in `pendingSnapshot`).
    var autoSnapshot = true
    /// Carry out `installSnapshot` at once (else it waits in `pendingInstall`).
    var autoInstall = true
    var pendingSnapshot: SnapshotMetadata?
    var pendingInstall: SnapshotMetadata?
    /// The snapshot file being received.
    var receiving: (snapshot: SnapshotMetadata, bytes: [UInt8])?
    /// Offsets of the chunks written, in order.
    var chunksWritten: [UInt64] = []

    var durableState: DurableState { DurableState(hardState: hardState, snapshot: snapshot, log: log) }
}

struct Link: Hashable {
    var from: NodeID
    var to: NodeID
}

final class TestCluster {
    private(set) var nodes: [NodeID: TestNode] = [:]
    let settings: Settings
    let seed: UInt64
    /// Bytes of every snapshot file a node takes.
    var snapshotSize: Int
    /// Messages sent and not yet delivered or dropped, oldest first.
    private(set) var queue: [Message] = []
    /// Every message sent, in order (including those dropped).
    private(set) var sent: [Message] = []
    /// Every message delivered, in order.
    private(set) var delivered: [Message] = []
    /// Links that lose every message.
    private(set) var cut: Set<Link> = []

    /// A new cluster whose voters are `ids`, each bootstrapped with that configuration unless
    /// `states` gives its disk.
    init(_ ids: [NodeID] = ["n1", "n2", "n3"], settings: Settings = .test(), seed: UInt64 = 1,
         snapshotSize: Int = 1000, states: [NodeID: DurableState] = [:]) {
        self.settings = settings
        self.seed = seed
        self.snapshotSize = snapshotSize
        for id in ids {
            add(id, state: states[id] ?? .bootstrap(Configuration(voters: ids)))
        }
    }

    /// Starts a node from `state` (an empty state for a node waiting to be added).
    func add(_ id: NodeID, state: DurableState = DurableState(), settings: Settings? = nil) {
        let core = RaftCore(id: id, settings: settings ?? self.settings, seed: seed, state: state)
        nodes[id] = TestNode(core: core, hardState: state.hardState, log: state.log, snapshot: state.snapshot)
        process(id)
    }

    /// Restarts a node from its disk: everything volatile is lost.
    func restart(_ id: NodeID) {
        let node = nodes[id]!
        var fresh = TestNode(
            core: RaftCore(id: id, settings: node.core.settings, seed: seed &+ 1, state: node.durableState),
            hardState: node.hardState, log: node.log, snapshot: node.snapshot)
        fresh.files = node.files
        nodes[id] = fresh
        queue.removeAll { $0.to == id }
        process(id)
    }

    subscript(_ id: NodeID) -> RaftCore { nodes[id]!.core }

    func node(_ id: NodeID) -> TestNode { nodes[id]! }

    func configure(_ id: NodeID, _ change: (inout TestNode) -> Void) { change(&nodes[id]!) }

    var ids: [NodeID] { nodes.keys.sorted() }

    var leaders: [NodeID] { ids.filter { nodes[$0]!.core.role == .leader } }

    // MARK: Events

    /// One tick of `id`'s clock; returns the actions it produced.
    @discardableResult
    func tick(_ id: NodeID, times: Int = 1) -> [Action] {
        var out: [Action] = []
        for _ in 0..<times {
            nodes[id]!.core.tick()
            out += process(id)
        }
        return out
    }

    /// One tick of every node's clock, then every message delivered.
    func tickAll(times: Int = 1) {
        for _ in 0..<times {
            for id in ids { tick(id) }
            deliverAll()
        }
    }

    /// `id`'s core asked for the read `readID` (ReadIndex); its actions carried out.
    @discardableResult
    func readIndex(_ id: NodeID, _ readID: UInt64) -> Bool {
        let accepted = nodes[id]!.core.readIndex(readID)
        process(id)
        return accepted
    }

    /// Carries out whatever actions `id`'s core holds.
    @discardableResult
    func flushActions(_ id: NodeID) -> [Action] { process(id) }

    /// `id`'s shell saw `peer`'s connection close (its process ended).
    @discardableResult
    func peerDisconnected(_ id: NodeID, from peer: NodeID) -> [Action] {
        nodes[id]!.core.peerDisconnected(peer)
        return process(id)
    }

    /// Hands `message` to its addressee directly (not through the queue); returns the actions.
    @discardableResult
    func step(_ message: Message) -> [Action] {
        nodes[message.to]!.core.step(message)
        return process(message.to)
    }

    func propose(_ id: NodeID, _ commands: [[UInt8]]) -> Result<(index: LogIndex, term: Term), ProposalError> {
        let result = nodes[id]!.core.propose(commands)
        process(id)
        return result
    }

    func propose(_ id: NodeID, _ command: String) -> Result<(index: LogIndex, term: Term), ProposalError> {
        propose(id, [Array(command.utf8)])
    }

    func proposeChange(_ id: NodeID, _ change: ConfigurationChange) -> Result<(index: LogIndex, term: Term), ProposalError> {
        let result = nodes[id]!.core.proposeChange(change)
        process(id)
        return result
    }

    /// Finishes the snapshot `id` was asked to take and did not take at once.
    func finishSnapshot(_ id: NodeID) {
        guard let meta = nodes[id]!.pendingSnapshot else { return }
        nodes[id]!.pendingSnapshot = nil
        takeSnapshot(id, meta)
        process(id)
    }

    /// Finishes the install `id` was asked for and did not do at once.
    func finishInstall(_ id: NodeID) {
        guard let meta = nodes[id]!.pendingInstall else { return }
        nodes[id]!.pendingInstall = nil
        install(id, meta)
        process(id)
    }

    /// Fails the install `id` was asked for and did not do at once.
    func failInstall(_ id: NodeID) {
        guard let meta = nodes[id]!.pendingInstall else { return }
        nodes[id]!.pendingInstall = nil
        nodes[id]!.receiving = nil
        nodes[id]!.core.snapshotFailed(meta, reason: "test")
        process(id)
    }

    /// The shell of `id` reports that a snapshot take failed.
    func failTake(_ id: NodeID) {
        nodes[id]!.core.snapshotFailed(nil, reason: "test: take failed")
        process(id)
    }

    /// Asks `id` for a snapshot now (the client's `snapshot`).
    func requestSnapshot(_ id: NodeID) -> LogIndex {
        let index = nodes[id]!.core.requestSnapshot()
        process(id)
        return index
    }

    // MARK: Network

    /// Loses every message between `id` and the others until `heal`.
    func isolate(_ id: NodeID) {
        for other in ids where other != id {
            cut.insert(Link(from: id, to: other))
            cut.insert(Link(from: other, to: id))
        }
        queue.removeAll { isCut($0) }
    }

    /// Loses every message from `from` to `to`.
    func cutLink(from: NodeID, to: NodeID) {
        cut.insert(Link(from: from, to: to))
        queue.removeAll { isCut($0) }
    }

    func heal() { cut.removeAll() }

    private func isCut(_ m: Message) -> Bool { cut.contains(Link(from: m.from, to: m.to)) }

    /// Delivers queued messages, oldest first, and those they cause, until none is left.
    func deliverAll(limit: Int = 100_000) {
        deliver(where: { _ in true }, limit: limit)
    }

    /// Delivers the queued messages that `pick` chooses, oldest first, and those they cause
    /// that it chooses too, until none is left; the rest stay queued.
    func deliver(where pick: (Message) -> Bool, limit: Int = 100_000) {
        var count = 0
        while let i = queue.firstIndex(where: pick) {
            let m = queue.remove(at: i)
            count += 1
            precondition(count <= limit, "more than \(limit) messages: a livelock?")
            guard !isCut(m), nodes[m.to] != nil else { continue }
            delivered.append(m)
            step(m)
        }
    }

    /// Delivers the oldest queued message that `pick` chooses, and nothing it causes.
    func deliverOne(where pick: (Message) -> Bool) {
        guard let i = queue.firstIndex(where: pick) else { return }
        let m = queue.remove(at: i)
        guard !isCut(m), nodes[m.to] != nil else { return }
        delivered.append(m)
        step(m)
    }

    /// Removes the queued messages that `pick` chooses and returns them.
    @discardableResult
    func drop(where pick: (Message) -> Bool) -> [Message] {
        let out = queue.filter(pick)
        queue.removeAll(where: pick)
        return out
    }

    /// The queued messages that `pick` chooses.
    func queued(where pick: (Message) -> Bool = { _ in true }) -> [Message] { queue.filter(pick) }

    // MARK: Helpers

    /// Ticks `id` until it starts a (pre-)election or becomes leader; returns the ticks it took.
    @discardableResult
    func tickUntilCampaign(_ id: NodeID, limit: Int? = nil) -> Int {
        let limit = limit ?? 2 * nodes[id]!.core.settings.electionTicks + 1
        for n in 1...limit {
            tick(id)
            let role = nodes[id]!.core.role
            if role == .preCandidate || role == .candidate || role == .leader { return n }
        }
        return -1
    }

    /// Makes `id` the leader: the others first go an election timeout without a leader (their
    /// own campaigns lost), then `id` campaigns and every message is delivered.
    func elect(_ id: NodeID) {
        for _ in 0..<10 {
            if nodes[id]!.core.settings.checkQuorum {
                // A node that heard from a leader within the election timeout ignores
                // RequestVote (dissertation 4.2.3): let that time pass on the others, losing
                // whatever they send meanwhile.
                for other in ids where other != id {
                    for _ in 0..<nodes[other]!.core.settings.electionTicks {
                        tick(other)
                        queue.removeAll { $0.from == other }
                    }
                }
            }
            tickUntilCampaign(id)
            deliverAll()
            if nodes[id]!.core.role == .leader { return }
        }
        preconditionFailure("\(id) did not become leader")
    }

    /// One heartbeat interval of `leader`'s clock, then every message delivered.
    func heartbeat(_ leader: NodeID, rounds: Int = 1) {
        for _ in 0..<rounds {
            tick(leader, times: nodes[leader]!.core.settings.heartbeatTicks)
            deliverAll()
        }
    }

    func messagesSent(where pick: (Message) -> Bool) -> [Message] { sent.filter(pick) }

    // MARK: The shell

    /// Carries out `id`'s actions in order, as a shell would, until there are none; returns them.
    @discardableResult
    private func process(_ id: NodeID) -> [Action] {
        var out: [Action] = []
        while true {
            let actions = nodes[id]!.core.takeActions()
            if actions.isEmpty { return out }
            out += actions
            nodes[id]!.history += actions
            for action in actions { carryOut(action, on: id) }
        }
    }

    private func enqueue(_ m: Message) {
        sent.append(m)
        if !isCut(m) { queue.append(m) }
    }

    private func carryOut(_ action: Action, on id: NodeID) {
        switch action {
        case let .saveHardState(hs):
            nodes[id]!.hardState = hs
        case let .appendLog(entries):
            guard let first = entries.first else { return }
            nodes[id]!.log.truncate(from: first.index)
            nodes[id]!.log.append(entries)
        case let .truncateLog(from):
            nodes[id]!.log.truncate(from: from)
        case let .compactLog(through, term):
            nodes[id]!.log.compact(through: through, term: term)
        case let .send(m):
            enqueue(m)
        case let .sendSnapshotChunk(to, term, snapshot, offset, length, done):
            guard let file = nodes[id]!.files[snapshot.index], Int(offset) + length <= file.count else {
                nodes[id]!.core.snapshotSendFailed(to: to, snapshot, reason: "no file")
                return
            }
            let data = Array(file[Int(offset)..<Int(offset) + length])
            enqueue(Message(from: id, to: to, term: term, body: .snapshotRecoveryRequest(
                SnapshotRecoveryRequest(index: snapshot.index, snapshotTerm: snapshot.term, offset: offset, data: data, done: done))))
        case let .apply(entries):
            nodes[id]!.applied += entries
        case let .takeSnapshot(index, term, configuration):
            let meta = SnapshotMetadata(index: index, term: term, configuration: configuration, size: UInt64(snapshotSize))
            if nodes[id]!.autoSnapshot {
                takeSnapshot(id, meta)
            } else {
                nodes[id]!.pendingSnapshot = meta
            }
        case let .beginSnapshotReceive(_, snapshot):
            nodes[id]!.receiving = (snapshot, [])
        case let .writeSnapshotChunk(snapshot, offset, data):
            nodes[id]!.chunksWritten.append(offset)
            if let r = nodes[id]!.receiving, r.snapshot == snapshot, Int(offset) == r.bytes.count {
                nodes[id]!.receiving!.bytes += data
            }
        case let .installSnapshot(meta):
            if nodes[id]!.autoInstall {
                install(id, meta)
            } else {
                nodes[id]!.pendingInstall = meta
            }
        case .abortSnapshotReceive:
            nodes[id]!.receiving = nil
        case let .observe(o):
            nodes[id]!.observations.append(o)
        case let .readReady(readID, index):
            nodes[id]!.readsReady.append((readID, index))
        case let .readFailed(readID):
            nodes[id]!.readsFailed.append(readID)
        }
    }

    private func takeSnapshot(_ id: NodeID, _ meta: SnapshotMetadata) {
        nodes[id]!.files[meta.index] = snapshotBytes(meta)
        nodes[id]!.snapshot = meta
        nodes[id]!.core.snapshotTaken(meta)
    }

    private func install(_ id: NodeID, _ meta: SnapshotMetadata) {
        let bytes = nodes[id]!.receiving?.bytes ?? []
        nodes[id]!.receiving = nil
        guard bytes == snapshotBytes(meta) else {
            nodes[id]!.core.snapshotFailed(meta, reason: "file differs from the leader's")
            return
        }
        nodes[id]!.files[meta.index] = bytes
        nodes[id]!.snapshot = meta
        nodes[id]!.core.snapshotInstalled(meta)
    }

    /// The bytes of a snapshot file: a function of its index, term and size.
    func snapshotBytes(_ meta: SnapshotMetadata) -> [UInt8] {
        var x = meta.index &* 0x9e37_79b9_7f4a_7c15 ^ meta.term
        return (0..<Int(meta.size)).map { _ in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: x >> 33)
        }
    }
}

// MARK: Building logs and messages

/// Entries 1, 2, ... (from `first`) with the given terms, commands whose payload names them.
func entries(terms: [Term], from first: LogIndex = 1) -> [Entry] {
    terms.enumerated().map { i, t in
        let index = first + LogIndex(i)
        return Entry(index: index, term: t, type: .command, payload: Array("\(index)@\(t)".utf8))
    }
}

/// A member of a cluster of `voters` that holds `log` and is in `term`.
func state(voters: [NodeID], term: Term, votedFor: NodeID? = nil, log terms: [Term]) -> DurableState {
    var s = DurableState.bootstrap(Configuration(voters: voters))
    s.hardState = HardState(term: term, votedFor: votedFor)
    s.log = RaftLog(entries: entries(terms: terms))
    return s
}

extension Message {
    static func requestVote(from: NodeID, to: NodeID, term: Term, lastIndex: LogIndex, lastTerm: Term, preVote: Bool = false) -> Message {
        Message(from: from, to: to, term: term, body: .requestVote(RequestVote(lastLogIndex: lastIndex, lastLogTerm: lastTerm, preVote: preVote)))
    }

    static func appendEntries(from: NodeID, to: NodeID, term: Term, prev: LogIndex, prevTerm: Term, _ entries: [Entry], commit: LogIndex = 0) -> Message {
        Message(from: from, to: to, term: term, body: .appendEntries(AppendEntries(prevLogIndex: prev, prevLogTerm: prevTerm, entries: entries, commitIndex: commit)))
    }

    var appendEntries: AppendEntries? {
        if case let .appendEntries(a) = body { return a }
        return nil
    }

    var appendEntriesResponse: AppendEntriesResponse? {
        if case let .appendEntriesResponse(r) = body { return r }
        return nil
    }

    var requestVote: RequestVote? {
        if case let .requestVote(v) = body { return v }
        return nil
    }

    /// (granted, preVote) of a RequestVote answer.
    var voteResponse: (granted: Bool, preVote: Bool)? {
        if case let .requestVoteResponse(g, p) = body { return (g, p) }
        return nil
    }

    var isVoteTraffic: Bool { requestVote != nil || voteResponse != nil }

    var snapshotRequest: SnapshotMetadata? {
        if case let .snapshotRequest(m) = body { return m }
        return nil
    }

    var snapshotResponse: (accepted: Bool, index: LogIndex, lastIndex: LogIndex)? {
        if case let .snapshotResponse(a, i, l) = body { return (a, i, l) }
        return nil
    }

    var chunk: SnapshotRecoveryRequest? {
        if case let .snapshotRecoveryRequest(c) = body { return c }
        return nil
    }

    var chunkResponse: SnapshotRecoveryResponse? {
        if case let .snapshotRecoveryResponse(r) = body { return r }
        return nil
    }

    var isHeartbeat: Bool {
        if case .heartbeat = body { return true }
        return false
    }
}

extension Action {
    var message: Message? {
        if case let .send(m) = self { return m }
        return nil
    }

    var savedHardState: HardState? {
        if case let .saveHardState(hs) = self { return hs }
        return nil
    }
}

extension Array where Element == Action {
    var messages: [Message] { compactMap(\.message) }
}

extension Result {
    var value: Success? {
        if case let .success(v) = self { return v }
        return nil
    }

    var error: Failure? {
        if case let .failure(e) = self { return e }
        return nil
    }
}
