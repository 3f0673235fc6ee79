/// What a node finds on its disk when it starts: term and vote, its newest snapshot (if
/// any) and its log. A fresh member of a new cluster starts from a snapshot at index 0 that
/// holds the first configuration; a node waiting to be added starts with none.
public struct DurableState: Sendable, Hashable {
    public var hardState: HardState
    public var snapshot: SnapshotMetadata?
    public var log: RaftLog

    public init(hardState: HardState = HardState(), snapshot: SnapshotMetadata? = nil, log: RaftLog = RaftLog()) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.log = log
    }

    /// The state of a fresh member of a new cluster whose first configuration is `configuration`.
    public static func bootstrap(_ configuration: Configuration) -> DurableState {
        DurableState(snapshot: SnapshotMetadata(index: 0, term: 0, configuration: configuration, size: 0))
    }
}

/// Why a proposal was refused.
public enum ProposalError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Only the leader takes proposals; `leader` is whom this node believes leads.
    case notLeader(leader: NodeID?)
    /// A configuration entry is not committed yet; one change at a time.
    case configChangeInProgress
    /// The leader has not committed an entry of its own term yet, so it may not change the
    /// configuration (the single-server change fix of 2015).
    case leaderNotReady
    case invalidChange(ConfigurationError)

    public var description: String {
        switch self {
        case let .notLeader(l): "not the leader" + (l.map { " (leader is \($0))" } ?? "")
        case .configChangeInProgress: "a configuration change is in progress"
        case .leaderNotReady: "the leader has not committed an entry of its term yet"
        case let .invalidChange(e): e.description
        }
    }
}

/// The Raft protocol as a deterministic state machine.
///
/// Call `tick()` at a fixed interval, `step(_:)` for each message from a peer, `propose(_:)`
/// and `proposeChange(_:)` for clients, and the `snapshot...` methods when the shell finishes
/// snapshot work; then carry out `takeActions()` in order (see `Action` for the contract).
/// Nothing here reads a clock, a disk or a socket, and every random choice comes from the
/// seed, so a schedule of calls replays exactly.
public struct RaftCore: Sendable {
    public let id: NodeID
    public let settings: Settings
    private var rng: SeededRandom

    // Durable state (the shell persists it when told to).
    public private(set) var term: Term
    public private(set) var votedFor: NodeID?
    /// Started with no configuration (new, or wiped to be added again under its old name)
    /// and not yet caught up with a leader: no vote, no campaign, whatever configuration it
    /// holds. A snapshot it installs may be older than its own addition (from a deposed
    /// leader, or a leader's snapshot from before its removal), naming it a voter under its
    /// old identity; raft-sim --machines (storm seed 592) found two such wiped members, each
    /// with a stale snapshot of a configuration of theirs, elect one of them without entries
    /// the cluster had committed. It has caught up once an AppendEntries of its current
    /// leader leaves its log at or past the commit index that leader sent: it then holds
    /// every entry committed when it was sent, a configuration at least as new among them.
    public private(set) var joining: Bool
    public private(set) var log: RaftLog
    /// The newest durable snapshot.
    public private(set) var snapshot: SnapshotMetadata?

    // Volatile state.
    public private(set) var role: Role = .follower
    public private(set) var leader: NodeID?
    public private(set) var commitIndex: LogIndex
    public private(set) var appliedIndex: LogIndex
    /// What the leader knows of each other member.
    public private(set) var progress: [NodeID: Progress] = [:]
    /// Set once this node learns that its removal is committed; it never campaigns again.
    public private(set) var isRemoved = false
    /// Ticks since this core was made: the core's only clock.
    public private(set) var ticks: UInt64 = 0

    /// Configurations in force from an index on: the one as of the log's compaction point
    /// first, then one for each configuration entry in the log, in index order.
    private var configs: [ConfigAt]
    private var electionElapsed = 0
    private var heartbeatElapsed = 0
    private var randomizedElectionTimeout = 0
    /// Linearizable reads waiting on this leader (ReadIndex): each needs a confirmation round
    /// sent after it came, and is answered from the state applied through its index.
    private var reads = ReadRounds()
    private var votes: [NodeID: Bool] = [:]
    /// Members removed by this leader, to be told once their removal commits.
    private var departing: [NodeID: Departing] = [:]
    private var snapshotRequested = false
    /// Payload bytes of the entries applied after the newest snapshot's index.
    private var appliedBytesSinceSnapshot = 0
    /// What the newest snapshot cost to write, in bytes: its state's, when the shell said
    /// (`snapshotTaken(_:stateBytes:)`), else its file's.
    private var snapshotWeight: UInt64 = 0
    private var receiving: Receiving?
    private var actions: [Action] = []

    private struct ConfigAt: Sendable, Hashable {
        var index: LogIndex
        var configuration: Configuration
    }

    private struct Departing: Sendable, Hashable {
        var configIndex: LogIndex
        /// Heartbeats left of telling it, then of quarantine.
        var noticesLeft: Int
        var quarantine: Int
    }

    private struct Receiving: Sendable, Hashable {
        var from: NodeID
        var snapshot: SnapshotMetadata
        var nextOffset: UInt64 = 0
        var installing = false
    }

    public init(id: NodeID, settings: Settings = Settings(), seed: UInt64, state: DurableState) {
        self.id = id
        self.settings = settings
        self.rng = SeededRandom(seed: seed ^ StableHash.of(id.utf8))
        self.term = state.hardState.term
        self.votedFor = state.hardState.votedFor
        self.joining = state.hardState.joining
        var log = state.log
        var repair: [Action] = []
        let base: ConfigAt
        if let snap = state.snapshot {
            // A crash between installing a snapshot and resetting the log leaves a log that
            // does not reach or does not match the snapshot: the snapshot wins, on disk too.
            if log.term(at: snap.index) != snap.term {
                if log.lastIndex > snap.index { repair.append(.observe(.truncate(from: snap.index + 1))) }
                if log.lastIndex > log.prevIndex { repair.append(.truncateLog(from: log.firstIndex)) }
                repair.append(.observe(.compact(through: snap.index)))
                repair.append(.compactLog(through: snap.index, term: snap.term))
                log = RaftLog(prevIndex: snap.index, prevTerm: snap.term)
            }
            base = ConfigAt(index: snap.index, configuration: snap.configuration)
        } else {
            base = ConfigAt(index: 0, configuration: .empty)
        }
        self.log = log
        self.snapshot = state.snapshot
        self.commitIndex = state.snapshot?.index ?? 0
        self.appliedIndex = commitIndex
        self.configs = [base]
        for e in log.entries where e.type == .config && e.index > base.index {
            if let c = e.configuration { configs.append(ConfigAt(index: e.index, configuration: c)) }
        }
        self.role = configuration.isLearner(id) ? .learner : .follower
        self.actions = repair
        if !joining && configs.allSatisfy({ $0.configuration.isEmpty }) {
            // Durable before anything else it does: a snapshot it installs next must not
            // make it a voter after a crash.
            joining = true
            actions.append(.saveHardState(hardState))
        }
        resetElectionTimer()
    }

    // MARK: Reading

    /// The configuration in force: the newest in the log, committed or not.
    public var configuration: Configuration {
        if settings.mutations.contains(.configOnCommit) {
            return configs.last { $0.index <= commitIndex }?.configuration ?? configs[0].configuration
        }
        return configs[configs.count - 1].configuration
    }

    /// The index of the entry that holds `configuration` (the snapshot's index for one from a snapshot).
    public var configurationIndex: LogIndex {
        if settings.mutations.contains(.configOnCommit) {
            return configs.last { $0.index <= commitIndex }?.index ?? configs[0].index
        }
        return configs[configs.count - 1].index
    }

    /// The newest configuration entry in the log, committed or not (what a leader replicates to).
    public var latestConfiguration: Configuration { configs[configs.count - 1].configuration }
    public var latestConfigurationIndex: LogIndex { configs[configs.count - 1].index }

    /// The configuration as of `index` (at or after the log's compaction point).
    public func configuration(at index: LogIndex) -> Configuration {
        (configs.last { $0.index <= index } ?? configs[0]).configuration
    }

    /// Whether a snapshot is being received or installed.
    public var isReceivingSnapshot: Bool { receiving != nil }

    /// The hard state as it must be on disk.
    public var hardState: HardState { HardState(term: term, votedFor: votedFor, joining: joining) }

    /// Whether this leader has committed an entry of its own term (so it knows the commit
    /// index of the cluster and may change the configuration).
    public var hasCommittedInTerm: Bool { role == .leader && log.term(at: commitIndex) == term }

    /// Whether there are no actions to take.
    public var pendingActionsIsEmpty: Bool { actions.isEmpty }

    /// Hands over the actions produced so far, in order.
    public mutating func takeActions() -> [Action] {
        defer { actions.removeAll(keepingCapacity: true) }
        return actions
    }

    // MARK: Time

    /// One tick of the clock.
    public mutating func tick() {
        ticks += 1
        electionElapsed += 1
        if role == .leader {
            heartbeatElapsed += 1
            if electionElapsed >= settings.electionTicks {
                electionElapsed = 0
                if settings.checkQuorum && !checkQuorumActive() {
                    becomeFollower(term: term, leader: nil)
                    return
                }
                // CheckQuorum's window starts again.
                for peer in progress.keys { progress[peer]?.recentActive = false }
            }
            if heartbeatElapsed >= settings.heartbeatTicks {
                heartbeatElapsed = 0
                broadcastHeartbeat()
                maybePromoteLearner()
            }
        } else if electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            if isPromotable {
                campaign(preVote: settings.preVote)
            } else {
                if isLeftOutOfLatestConfiguration { askWhetherRemoved() }
                resetElectionTimer()
            }
        }
    }

    /// Whether this node may start an election: a voter, not removed, not taking in a
    /// snapshot, not joining.
    private var isPromotable: Bool {
        configuration.isVoter(id) && !isRemoved && receiving == nil && !joining
    }

    /// A node whose newest configuration leaves it out, not yet told that the change
    /// committed: a leader appended its own removal and lost its role before the commit, or
    /// a follower got the entry and then lost touch. No leader of that configuration sends it
    /// anything, and, no voter, it never campaigns, so it must ask (harness explore --sim found
    /// such a leader running forever).
    private var isLeftOutOfLatestConfiguration: Bool {
        !isRemoved && receiving == nil && !latestConfiguration.isEmpty && !latestConfiguration.isMember(id)
    }

    /// A poll of the newest configuration's voters: it changes nothing on them, and their
    /// leader answers it with `.removed` once the change is committed. If the change is
    /// overwritten instead, a leader whose configuration holds this node replicates to it.
    private mutating func askWhetherRemoved() {
        let request = RequestVote(lastLogIndex: log.lastIndex, lastLogTerm: log.lastTerm, preVote: true)
        for peer in latestConfiguration.voters where peer != id {
            send(to: peer, term: term + 1, .requestVote(request))
        }
    }

    private mutating func resetElectionTimer() {
        electionElapsed = 0
        let t = max(1, settings.electionTicks)
        randomizedElectionTimeout = t + Int(rng.next() % UInt64(t))
    }

    // MARK: Role changes

    private mutating func setRole(_ newRole: Role, leader newLeader: NodeID?) {
        if role == .leader || newRole == .leader {
            // A new leader starts its rounds afresh; one that stops leading answers none.
            for id in reads.all { actions.append(.readFailed(id: id)) }
            reads = ReadRounds()
        }
        let changed = newRole != role || newLeader != leader
        role = newRole
        leader = newLeader
        if changed { actions.append(.observe(.role(newRole, leader: newLeader, term: term))) }
    }

    private mutating func persistHardState() {
        var hs = hardState
        if settings.mutations.contains(.goraftVote) { hs.votedFor = nil }
        actions.append(.saveHardState(hs))
    }

    private mutating func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
        let newTermStarted = newTerm > term
        if newTermStarted {
            term = newTerm
            votedFor = nil
            persistHardState()
        }
        // A transfer belongs to one leader in one term: a leader of a new term starts afresh
        // (probing), and a follower still waiting for chunks would refuse its entries.
        if let r = receiving, !r.installing, r.from != newLeader || newTermStarted {
            actions.append(.abortSnapshotReceive(r.snapshot))
            receiving = nil
        }
        progress.removeAll()
        departing.removeAll()
        votes.removeAll()
        heartbeatElapsed = 0
        resetElectionTimer()
        setRole(restingRole, leader: newLeader)
    }

    /// The role of a node that is not leading or campaigning.
    private var restingRole: Role {
        if receiving != nil { return .snapshotting }
        return configuration.isLearner(id) ? .learner : .follower
    }

    private mutating func campaign(preVote: Bool) {
        let voteTerm: Term
        if preVote {
            voteTerm = term + 1
            setRole(.preCandidate, leader: nil)
        } else {
            term += 1
            votedFor = id
            persistHardState()
            actions.append(.observe(.vote(for: id, term: term)))
            voteTerm = term
            setRole(.candidate, leader: nil)
        }
        votes = [id: true]
        resetElectionTimer()
        if Quorum.isMajority(votes.filter(\.value).keys, of: configuration.voters) {
            if preVote { campaign(preVote: false) } else { becomeLeader() }
            return
        }
        let request = RequestVote(lastLogIndex: log.lastIndex, lastLogTerm: log.lastTerm, preVote: preVote)
        for peer in configuration.voters where peer != id {
            send(to: peer, term: voteTerm, .requestVote(request))
        }
    }

    private mutating func becomeLeader() {
        setRole(.leader, leader: id)
        heartbeatElapsed = 0
        electionElapsed = 0
        votes.removeAll()
        progress.removeAll()
        syncProgressWithConfiguration()
        // goraft's NOP: an entry of this term, whose commit commits everything before it.
        appendAsLeader([(EntryType.noop, [])])
    }

    /// Keeps one Progress for each member of the newest configuration but this node.
    private mutating func syncProgressWithConfiguration() {
        let members = Set(latestConfiguration.members)
        for peer in members where peer != id && progress[peer] == nil {
            var pr = Progress(next: log.lastIndex + 1, now: ticks)
            pr.recentActive = true
            progress[peer] = pr
        }
        for peer in progress.keys where !members.contains(peer) {
            if let transfer = progress[peer]?.transfer, transfer.accepted {
                actions.append(.observe(.error(what: "snapshot-send", detail: "transfer to \(peer) ended: removed from the configuration")))
            }
            progress[peer] = nil
        }
    }

    private func checkQuorumActive() -> Bool {
        var active = Set<NodeID>([id])
        for (peer, pr) in progress where pr.recentActive { active.insert(peer) }
        return Quorum.isMajority(active, of: configuration.voters)
    }

    // MARK: Messages

    /// Takes a message from a peer.
    public mutating func step(_ m: Message) {
        guard m.to == id else {
            actions.append(.observe(.error(what: "message", detail: "message for \(m.to) delivered to \(id)")))
            return
        }
        if case .removed(let configIndex) = m.body {
            // A committed configuration is true whatever the term of the message that tells it.
            handleRemovedNotice(from: m.from, configIndex: configIndex, term: m.term)
            return
        }
        if case .requestVote = m.body, role == .leader, !configuration.isMember(m.from), configurationIndex <= commitIndex {
            // A member removed while cut off polls its old peers: tell it (and ignore its poll).
            send(to: m.from, .removed(configIndex: configurationIndex))
            if departing[m.from] == nil {
                // The notice may arrive late: keep its name out of reach of a new member for a
                // while, as after a removal this leader made.
                let q = noticeHeartbeats
                departing[m.from] = Departing(configIndex: configurationIndex, noticesLeft: q, quarantine: q)
            }
            return
        }
        if m.term > term {
            switch m.body {
            case .requestVote:
                // Dissertation 4.2.3: a node that heard from a leader within the minimum
                // election timeout neither updates its term nor grants its vote.
                if settings.checkQuorum && leader != nil && electionElapsed < settings.electionTicks { return }
                if case .requestVote(let rv) = m.body, rv.preVote { break }
                becomeFollower(term: m.term, leader: nil)
            case .requestVoteResponse(let granted, let preVote) where preVote && granted:
                break  // a granted poll carries the term we would campaign in
            case .appendEntries, .heartbeat, .readRound, .snapshotRequest, .snapshotRecoveryRequest:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: nil)
            }
        } else if m.term < term {
            switch m.body {
            case .appendEntries, .heartbeat, .readRound, .snapshotRequest, .snapshotRecoveryRequest:
                // Tell a stale leader of the newer term so that it steps down.
                send(to: m.from, .heartbeatResponse)
            case .requestVote(let rv):
                send(to: m.from, .requestVoteResponse(granted: false, preVote: rv.preVote))
            default:
                break
            }
            return
        }

        if role == .leader { progress[m.from]?.lastHeardTick = ticks }
        switch m.body {
        case .requestVote(let rv):
            handleRequestVote(m, rv)
        case let .requestVoteResponse(granted, preVote):
            handleVoteResponse(from: m.from, granted: granted, preVote: preVote)
        case .appendEntries(let ae):
            hearFromLeader(m.from)
            handleAppendEntries(from: m.from, ae)
        case .appendEntriesResponse(let r):
            handleAppendEntriesResponse(from: m.from, r)
        case .heartbeat(let commit):
            hearFromLeader(m.from)
            if commit > commitIndex && receiving?.installing != true {
                commitTo(min(commit, log.lastIndex))
            }
            send(to: m.from, .heartbeatResponse)
        case .heartbeatResponse:
            handleHeartbeatResponse(from: m.from)
        case let .readRound(commit, round):
            hearFromLeader(m.from)
            if commit > commitIndex && receiving?.installing != true {
                commitTo(min(commit, log.lastIndex))
            }
            send(to: m.from, .readRoundResponse(round: round))
        case let .readRoundResponse(round):
            handleHeartbeatResponse(from: m.from)
            guard role == .leader else { break }
            reads.acks[m.from] = max(reads.acks[m.from] ?? 0, round)
            confirmReads()
        case .snapshotRequest(let meta):
            hearFromLeader(m.from)
            handleSnapshotRequest(from: m.from, meta)
        case let .snapshotResponse(accepted, index, lastIndex):
            handleSnapshotResponse(from: m.from, accepted: accepted, index: index, lastIndex: lastIndex)
        case .snapshotRecoveryRequest(let chunk):
            hearFromLeader(m.from)
            handleSnapshotChunk(from: m.from, chunk)
        case .snapshotRecoveryResponse(let r):
            handleSnapshotRecoveryResponse(from: m.from, r)
        case .removed:
            break  // handled above
        }
    }

    /// The leader says the configuration at `configIndex`, which leaves this node out, is
    /// committed. Not for a node that never held a configuration (new, waiting to be added),
    /// nor for one that holds a newer configuration than the removal (added again since).
    ///
    /// Nor for one that follows a leader of a newer term than the notice's: that leader
    /// replicates to it, so counts it a member (it may have been added again since, further
    /// on in a log it is still catching up on), and would tell it in its own term otherwise.
    /// raft-sim --machines found a wiped node, added again under its name, stopped for good by
    /// its old removal's late notice.
    private mutating func handleRemovedNotice(from: NodeID, configIndex: LogIndex, term noticeTerm: Term) {
        guard configIndex > 0, latestConfigurationIndex <= configIndex, !configs.allSatisfy({ $0.configuration.isEmpty }) else { return }
        guard noticeTerm >= term || leader == nil else { return }
        if noticeTerm == term && role != .leader { hearFromLeader(from) }
        markRemoved()
    }

    /// A message of the current term from its leader.
    private mutating func hearFromLeader(_ from: NodeID) {
        if role == .leader {
            // Two leaders in one term cannot happen; say so loudly rather than follow.
            actions.append(.observe(.error(what: "protocol", detail: "leader message from \(from) in my own term \(term)")))
            return
        }
        electionElapsed = 0
        if leader != from || role == .candidate || role == .preCandidate {
            becomeFollower(term: term, leader: from)
        }
    }

    private mutating func send(to peer: NodeID, term t: Term? = nil, _ body: Message.Body) {
        actions.append(.send(Message(from: id, to: peer, term: t ?? term, body: body)))
    }

    // MARK: Elections

    private mutating func handleRequestVote(_ m: Message, _ rv: RequestVote) {
        let canVote: Bool
        let upToDate: Bool
        if settings.mutations.contains(.goraftVote) {
            canVote = votedFor == nil || votedFor == m.from
            upToDate = !(log.lastIndex > rv.lastLogIndex || log.lastTerm > rv.lastLogTerm)
        } else {
            canVote = votedFor == m.from || (votedFor == nil && leader == nil) || (rv.preVote && m.term > term)
            upToDate = log.isUpToDate(lastIndex: rv.lastLogIndex, lastTerm: rv.lastLogTerm)
        }
        // A node with no configuration has not been added yet, or was wiped to be added again
        // under its old name: its empty log is "up to date" with any candidate's, and the
        // votes it may have cast before the wipe are forgotten. It votes once a leader has
        // caught it up (see `joining`: a configuration alone may be a stale snapshot's). The
        // simulator found a removed node, restarted with its old log, elected by such a
        // node's vote.
        guard canVote && upToDate && !configuration.isEmpty && !joining else {
            send(to: m.from, .requestVoteResponse(granted: false, preVote: rv.preVote))
            return
        }
        if rv.preVote {
            // Granting a poll changes nothing here; answer in the term polled for.
            send(to: m.from, term: m.term, .requestVoteResponse(granted: true, preVote: true))
            return
        }
        votedFor = m.from
        persistHardState()
        actions.append(.observe(.vote(for: m.from, term: term)))
        resetElectionTimer()
        send(to: m.from, .requestVoteResponse(granted: true, preVote: false))
    }

    private mutating func handleVoteResponse(from: NodeID, granted: Bool, preVote: Bool) {
        guard (preVote && role == .preCandidate) || (!preVote && role == .candidate) else { return }
        votes[from] = granted
        let voters = configuration.voters
        if Quorum.isMajority(votes.filter(\.value).keys, of: voters) {
            if preVote { campaign(preVote: false) } else { becomeLeader() }
        } else if Quorum.isLost(votes.filter { !$0.value }.keys, of: voters) {
            becomeFollower(term: term, leader: nil)
        }
    }

    // MARK: Replication, follower side

    private mutating func handleAppendEntries(from: NodeID, _ ae: AppendEntries) {
        if let r = receiving, !r.installing, r.from == from {
            // A leader sends entries to a follower only while it sends it no snapshot: this
            // one gave the transfer up (the install of an earlier offer made it needless, or
            // it was abandoned). Waiting for its chunks would wait for ever.
            actions.append(.abortSnapshotReceive(r.snapshot))
            receiving = nil
            setRole(restingRole, leader: from)
        }
        guard receiving == nil else {
            // Taking in a snapshot: the log waits until it is installed.
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(success: false, index: ae.prevLogIndex, hintIndex: log.lastIndex + 1, lastIndex: log.lastIndex)))
            return
        }
        var prevIndex = ae.prevLogIndex
        var prevTerm = ae.prevLogTerm
        var entries = ae.entries[...]
        if prevIndex < commitIndex {
            // Everything up to the commit index is committed here and matches the leader.
            let skip = Int(min(commitIndex - prevIndex, LogIndex(entries.count)))
            entries = entries.dropFirst(skip)
            prevIndex += LogIndex(skip)
            if prevIndex < commitIndex {
                send(to: from, .appendEntriesResponse(AppendEntriesResponse(success: true, index: commitIndex, lastIndex: log.lastIndex)))
                return
            }
            prevTerm = skip > 0 ? ae.entries[skip - 1].term : ae.prevLogTerm
        }
        guard let localPrevTerm = log.term(at: prevIndex) else {
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(success: false, index: ae.prevLogIndex, hintIndex: log.lastIndex + 1, lastIndex: log.lastIndex)))
            return
        }
        guard localPrevTerm == prevTerm else {
            let hint = max(log.firstIndexOfTerm(at: prevIndex), commitIndex + 1)
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(success: false, index: ae.prevLogIndex, hintIndex: hint, hintTerm: localPrevTerm, lastIndex: log.lastIndex)))
            return
        }
        // Skip the entries this log already has; remove a conflicting suffix only.
        if let k = entries.firstIndex(where: { log.term(at: $0.index) != $0.term }) {
            let newEntries = Array(entries[k...])
            let first = newEntries[0].index
            if first <= log.lastIndex {
                truncateLog(from: first)
            }
            appendToLog(newEntries)
        }
        let lastNew = prevIndex + LogIndex(entries.count)
        if ae.commitIndex > commitIndex {
            let target = min(ae.commitIndex, lastNew)
            if target > commitIndex { commitTo(target) }
        }
        if joining && lastNew >= ae.commitIndex {
            // Caught up with its leader (see `joining`): a member like any other from now on.
            joining = false
            persistHardState()
        }
        send(to: from, .appendEntriesResponse(AppendEntriesResponse(success: true, index: lastNew, lastIndex: log.lastIndex)))
    }

    private mutating func truncateLog(from index: LogIndex) {
        actions.append(.observe(.truncate(from: index)))
        log.truncate(from: index)
        actions.append(.truncateLog(from: index))
        let before = configs.count
        let baseIndex = configs[0].index
        configs.removeAll { $0.index >= index && $0.index > baseIndex }
        if configs.count != before {
            syncRoleWithConfiguration()
        }
    }

    private mutating func appendToLog(_ entries: [Entry]) {
        log.append(entries)
        actions.append(.appendLog(entries))
        var changed = false
        for e in entries where e.type == .config {
            guard let c = e.configuration else {
                actions.append(.observe(.error(what: "config", detail: "unreadable configuration entry at \(e.index)")))
                continue
            }
            configs.append(ConfigAt(index: e.index, configuration: c))
            actions.append(.observe(.config(index: e.index, c, committed: false)))
            changed = true
        }
        if changed { syncRoleWithConfiguration() }
    }

    /// After the configuration changed: a follower that became a learner or the reverse says so.
    private mutating func syncRoleWithConfiguration() {
        if role == .leader {
            syncProgressWithConfiguration()
        } else if role == .follower || role == .learner {
            setRole(restingRole, leader: leader)
        }
    }

    private mutating func commitTo(_ index: LogIndex) {
        guard index > commitIndex else { return }
        let old = commitIndex
        commitIndex = index
        actions.append(.observe(.commit(index)))
        if role == .leader, !reads.beforeTermCommit.isEmpty, log.term(at: commitIndex) == term {
            let waiting = reads.beforeTermCommit
            reads.beforeTermCommit = []
            for id in waiting { queueRead(id) }
        }
        for c in configs where c.index > old && c.index <= index {
            actions.append(.observe(.config(index: c.index, c.configuration, committed: true)))
        }
        if role == .leader {
            // In name order: a dictionary's order changes from process to process, and the
            // order of sends is part of a seeded schedule.
            for (peer, d) in departing.sorted(by: { $0.key < $1.key }) where d.configIndex <= commitIndex {
                send(to: peer, .removed(configIndex: d.configIndex))
            }
            if !configuration.isVoter(id) && configurationIndex <= commitIndex {
                // A leader removed from the configuration steps down once the change commits.
                applyCommitted()
                let stillMember = configuration.isMember(id)
                becomeFollower(term: term, leader: nil)
                if !stillMember { markRemoved() }
                return
            }
        }
        applyCommitted()
    }

    private mutating func markRemoved() {
        guard !isRemoved else { return }
        isRemoved = true
        actions.append(.observe(.removed))
    }

    private mutating func applyCommitted() {
        guard receiving?.installing != true else { return }
        while appliedIndex < commitIndex {
            let batch = log.entries(from: appliedIndex + 1, maxCount: 1024)
            guard let last = batch.last, batch[0].index == appliedIndex + 1 else { break }
            appliedIndex = min(last.index, commitIndex)
            let applied = batch.filter { $0.index <= commitIndex }
            for e in applied { appliedBytesSinceSnapshot += e.payload.count }
            actions.append(.apply(applied))
        }
        maybeSnapshot()
    }

    private mutating func maybeSnapshot() {
        guard settings.snapshotThreshold > 0, !snapshotRequested, receiving == nil else { return }
        let since = appliedIndex - (snapshot?.index ?? 0)
        guard since >= LogIndex(settings.snapshotThreshold) else { return }
        let weight = max(snapshotWeight, snapshot?.size ?? 0)
        if settings.snapshotAmortizeFrom > 0, weight >= UInt64(settings.snapshotAmortizeFrom), appliedBytesSinceSnapshot < Int(clamping: weight) {
            return
        }
        requestSnapshotAction()
    }

    private mutating func requestSnapshotAction() {
        guard let t = log.term(at: appliedIndex) else { return }
        // A node that joined with no data and was sent the log from its start knows no
        // configuration before the entry that added it (the first one is in the leader's
        // snapshot at index 0): a snapshot there would claim an empty one. It waits until it
        // has applied a configuration entry (harness explore --sim, seed 3: check 9 found a
        // new member's snapshot at index 60 holding members []).
        guard !configuration(at: appliedIndex).isEmpty else { return }
        snapshotRequested = true
        actions.append(.takeSnapshot(index: appliedIndex, term: t, configuration: configuration(at: appliedIndex)))
    }

    // MARK: Replication, leader side

    /// goraft's `Do(command)`: appends commands to the leader's log. The result is the index
    /// and term of the first; a command has succeeded once an entry with its index *and term*
    /// is applied (another term at that index means it was overwritten).
    public mutating func propose(_ commands: [[UInt8]]) -> Result<(index: LogIndex, term: Term), ProposalError> {
        guard role == .leader else { return .failure(.notLeader(leader: leader)) }
        guard !commands.isEmpty else { return .success((log.lastIndex + 1, term)) }
        let first = log.lastIndex + 1
        appendAsLeader(commands.map { (EntryType.command, $0) })
        return .success((first, term))
    }

    /// goraft's AddPeer and RemovePeer, one server at a time, through the log.
    public mutating func proposeChange(_ change: ConfigurationChange) -> Result<(index: LogIndex, term: Term), ProposalError> {
        guard role == .leader else { return .failure(.notLeader(leader: leader)) }
        if case let .addLearner(id, _, _) = change, departing[id] != nil {
            // Its removal notices may still be on the way; a new member of that name must not get one.
            return .failure(.configChangeInProgress)
        }
        if !settings.mutations.contains(.configOnCommit) {
            guard log.term(at: commitIndex) == term else { return .failure(.leaderNotReady) }
        }
        guard latestConfigurationIndex <= commitIndex else { return .failure(.configChangeInProgress) }
        let old = latestConfiguration
        let new: Configuration
        do { new = try old.applying(change) } catch { return .failure(.invalidChange(error)) }
        let index = log.lastIndex + 1
        for peer in old.members where !new.isMember(peer) && peer != id {
            departing[peer] = Departing(configIndex: index, noticesLeft: 2 * noticeHeartbeats, quarantine: noticeHeartbeats)
        }
        appendAsLeader([(.config, new.encoded())])
        return .success((index, term))
    }

    /// Heartbeats of telling a removed member, and as many again of quarantine for its name.
    private var noticeHeartbeats: Int {
        10 * max(1, settings.electionTicks / max(1, settings.heartbeatTicks))
    }

    private mutating func appendAsLeader(_ items: [(EntryType, [UInt8])]) {
        var index = log.lastIndex
        let entries = items.map { item -> Entry in
            index += 1
            return Entry(index: index, term: term, type: item.0, payload: item.1)
        }
        appendToLog(entries)
        maybeCommit()
        broadcastAppend()
    }

    private mutating func broadcastAppend() {
        for peer in progress.keys.sorted() { sendAppends(to: peer) }
    }

    /// Sends what `peer` can take now: one probe, or entries up to the in-flight limit.
    private mutating func sendAppends(to peer: NodeID, allowEmpty: Bool = false) {
        var first = true
        while sendAppend(to: peer, allowEmpty: allowEmpty && first) { first = false }
    }

    /// Sends one AppendEntries (or starts a snapshot); true if another may follow at once.
    private mutating func sendAppend(to peer: NodeID, allowEmpty: Bool) -> Bool {
        guard var pr = progress[peer], !pr.isPaused(maxInflight: settings.maxInflight) else { return false }
        defer { progress[peer] = pr }
        let prevIndex = pr.next - 1
        guard let prevTerm = log.term(at: prevIndex) else {
            // What this follower needs next is compacted away: send a snapshot.
            guard let snap = snapshot, snap.index >= log.prevIndex else { return false }
            pr.becomeSnapshot(snap, now: ticks)
            actions.append(.observe(.snapshotSendStarted(to: peer, snap)))
            send(to: peer, .snapshotRequest(snap))
            return false
        }
        let entries = log.entries(from: pr.next, maxCount: settings.maxEntriesPerRequest, maxBytes: settings.maxBytesPerRequest)
        if pr.state == .replicate && entries.isEmpty && !allowEmpty { return false }
        send(to: peer, .appendEntries(AppendEntries(prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, commitIndex: commitIndex)))
        switch pr.state {
        case .replicate:
            if let last = entries.last {
                pr.next = last.index + 1
                pr.inflight.append(last.index)
            }
            return !entries.isEmpty
        case .probe:
            pr.probeSent = true
            return false
        case .snapshot:
            return false
        }
    }

    private mutating func handleAppendEntriesResponse(from peer: NodeID, _ r: AppendEntriesResponse) {
        guard role == .leader, var pr = progress[peer] else { return }
        pr.recentActive = true
        if r.success {
            if pr.state == .snapshot {
                progress[peer] = pr
                return
            }
            let advanced = pr.update(match: r.index)
            if pr.state == .probe && r.index >= pr.match {
                pr.becomeReplicate()
            }
            progress[peer] = pr
            if advanced { maybeCommit() }
        } else {
            switch pr.state {
            case .snapshot:
                progress[peer] = pr
                return
            case .replicate where r.index <= pr.match:
                progress[peer] = pr
                return
            case .probe where r.index != pr.next - 1:
                progress[peer] = pr
                return
            default:
                break
            }
            var next = r.hintIndex
            if r.hintTerm > 0, let i = log.lastIndex(ofTerm: r.hintTerm) { next = i + 1 }
            pr.next = max(pr.match + 1, min(next, r.index))
            pr.becomeProbe()
            progress[peer] = pr
        }
        guard role == .leader else { return }
        sendAppends(to: peer)
        maybePromoteLearner()
    }

    private mutating func handleHeartbeatResponse(from peer: NodeID) {
        guard role == .leader, var pr = progress[peer] else { return }
        pr.recentActive = true
        if pr.state == .replicate && pr.inflight.count >= settings.maxInflight {
            pr.inflight.removeFirst()
        }
        progress[peer] = pr
        // An append may have been lost: an empty one at `next` finds out (a rejection
        // sends this follower back to probe).
        if pr.match < log.lastIndex { sendAppends(to: peer, allowEmpty: true) }
    }

    private mutating func broadcastHeartbeat() {
        // A round whose messages or answers were lost is asked again with the heartbeat.
        if let round = reads.inFlight {
            for peer in configuration.voters.sorted() where peer != id && (reads.acks[peer] ?? 0) < round {
                send(to: peer, .readRound(commitIndex: min(progress[peer]?.match ?? 0, commitIndex), round: round))
            }
        }
        for peer in progress.keys.sorted() {
            guard var pr = progress[peer] else { continue }
            send(to: peer, .heartbeat(commitIndex: min(pr.match, commitIndex)))
            switch pr.state {
            case .probe:
                pr.probeSent = false
                progress[peer] = pr
                sendAppends(to: peer, allowEmpty: true)
            case .replicate:
                break
            case .snapshot:
                progress[peer] = pr
                heartbeatTransfer(to: peer)
            }
        }
        for (peer, var d) in departing.sorted(by: { $0.key < $1.key }) {
            if d.configIndex <= commitIndex {
                // Tell it for a while; then keep its name out of reach of a new member for as
                // long again, so that a late notice cannot reach one.
                if d.noticesLeft > d.quarantine { send(to: peer, .removed(configIndex: d.configIndex)) }
                d.noticesLeft -= 1
            }
            departing[peer] = d.noticesLeft > 0 ? d : nil
        }
    }

    private mutating func maybeCommit() {
        let voters = configuration.voters
        let index = Quorum.committedIndex(voters: voters) { peer in
            peer == id ? log.lastIndex : (progress[peer]?.match ?? 0)
        }
        guard index > commitIndex else { return }
        // Raft paper figure 8: only an entry of the leader's own term is committed by counting.
        if log.term(at: index) == term || settings.mutations.contains(.commitOldTermByCounting) {
            commitTo(index)
        }
    }

    /// Promotes one caught-up learner that was added to become a voter.
    ///
    /// Caught up means it holds everything committed, as a voter in good standing does; or,
    /// under a steady stream of writes that keeps it a few entries behind for ever, that it
    /// keeps up: it finished a catch-up round (reached the leader's last index as of the
    /// round's start) within an election timeout (dissertation 4.2.1).
    private mutating func maybePromoteLearner() {
        guard role == .leader else { return }
        let ready = latestConfigurationIndex <= commitIndex && log.term(at: commitIndex) == term
        for learner in latestConfiguration.promoting {
            guard var pr = progress[learner], pr.state == .replicate else { continue }
            var keepsUp = false
            if let round = pr.catchUpRound, pr.match >= round.target {
                keepsUp = ticks - round.startedTick <= UInt64(settings.electionTicks)
                pr.catchUpRound = nil
            }
            if pr.catchUpRound == nil && !keepsUp {
                pr.catchUpRound = Progress.CatchUpRound(target: log.lastIndex, startedTick: ticks)
            }
            progress[learner] = pr
            guard ready, keepsUp || pr.match >= commitIndex else { continue }
            _ = proposeChange(.promote(learner))
            return
        }
    }

    // MARK: Snapshots, leader side

    private mutating func handleSnapshotResponse(from peer: NodeID, accepted: Bool, index: LogIndex, lastIndex: LogIndex) {
        guard role == .leader, var pr = progress[peer] else { return }
        pr.recentActive = true
        guard pr.state == .snapshot, var transfer = pr.transfer, transfer.snapshot.index == index else {
            progress[peer] = pr
            return
        }
        if accepted {
            transfer.accept(now: ticks)
            pr.transfer = transfer
            progress[peer] = pr
            sendChunks(to: peer)
        } else {
            // Declined: the follower already holds the snapshot's last entry.
            _ = pr.update(match: index)
            pr.becomeProbe()
            progress[peer] = pr
            sendAppends(to: peer)
        }
    }

    private mutating func sendChunks(to peer: NodeID) {
        guard var pr = progress[peer], var transfer = pr.transfer else { return }
        for c in transfer.nextChunks(chunkSize: settings.snapshotChunkSize, window: settings.snapshotWindow) {
            actions.append(.sendSnapshotChunk(to: peer, term: term, snapshot: transfer.snapshot, offset: c.offset, length: c.length, done: c.done))
        }
        pr.transfer = transfer
        progress[peer] = pr
    }

    /// Ticks an accepted transfer may go with neither progress nor word of an install
    /// before the leader gives it up: four election timeouts.
    private var transferPatienceTicks: UInt64 { UInt64(4 * max(1, settings.electionTicks)) }

    /// A heartbeat round for a follower in `snapshot`: resend what seems lost, offer again,
    /// or give up a transfer that went nowhere.
    private mutating func heartbeatTransfer(to peer: NodeID) {
        guard var pr = progress[peer], var transfer = pr.transfer else { return }
        let step = transfer.heartbeat(now: ticks, abandonAfterTicks: transferPatienceTicks, chunkSize: settings.snapshotChunkSize)
        switch step {
        case .wait:
            pr.transfer = transfer
            progress[peer] = pr
        case .offerAgain:
            // The request or its answer was lost; offer the newest snapshot.
            if let snap = snapshot, snap.index > transfer.snapshot.index {
                restartTransfer(to: peer, with: snap)
                return
            }
            pr.transfer = transfer
            progress[peer] = pr
            send(to: peer, .snapshotRequest(transfer.snapshot))
        case .resend:
            pr.transfer = transfer
            progress[peer] = pr
            sendChunks(to: peer)
        case .abandon:
            let ms = transferPatienceTicks
            actions.append(.observe(.snapshotAbandoned(
                to: peer, transfer.snapshot, offset: transfer.ackedOffset,
                reason: "no chunk acknowledged and no word of an install for \(ms) ticks (4 election timeouts)")))
            restartTransfer(to: peer, with: snapshot ?? transfer.snapshot)
        }
    }

    private mutating func restartTransfer(to peer: NodeID, with snap: SnapshotMetadata) {
        guard var pr = progress[peer] else { return }
        pr.becomeSnapshot(snap, now: ticks)
        progress[peer] = pr
        actions.append(.observe(.snapshotSendStarted(to: peer, snap)))
        send(to: peer, .snapshotRequest(snap))
    }

    // MARK: Linearizable reads (ReadIndex, dissertation 6.4)

    /// A linearizable read with no log entry. Returns false when this node does not lead
    /// (refuse it, naming `leader`). Otherwise `.readReady(id, index)` follows once a
    /// majority of the voters answered a round this leader sent after the read came (no
    /// other leader can have committed anything then), with `index` its commit index when
    /// the read came: the state applied through `index`, or any later one, answers it. A
    /// leader that has not committed an entry of its own term yet may not know the commit
    /// index: reads wait for that first commit. Reads that come while a round is in flight
    /// share the next one. `.readFailed(id)` instead if this node stops leading first.
    public mutating func readIndex(_ readID: UInt64) -> Bool {
        guard role == .leader else { return false }
        if log.term(at: commitIndex) != term {
            reads.beforeTermCommit.append(readID)
        } else {
            queueRead(readID)
        }
        return true
    }

    private mutating func queueRead(_ readID: UInt64) {
        if Quorum.isMajority([id], of: configuration.voters) || settings.mutations.contains(.readWithoutConfirmation) {
            actions.append(.readReady(id: readID, index: commitIndex))
            return
        }
        if reads.inFlight == nil {
            startReadRound()
            reads.waiting.append((readID, commitIndex, reads.round))
        } else {
            reads.waiting.append((readID, commitIndex, reads.round + 1))
        }
    }

    private mutating func startReadRound() {
        reads.round += 1
        reads.inFlight = reads.round
        for peer in configuration.voters.sorted() where peer != id {
            send(to: peer, .readRound(commitIndex: min(progress[peer]?.match ?? 0, commitIndex), round: reads.round))
        }
    }

    /// Answers the reads the round in flight confirms, once a majority answered it; then
    /// sends the next round if reads wait for one.
    private mutating func confirmReads() {
        guard let round = reads.inFlight else { return }
        let confirmed = reads.acks.filter { $0.value >= round }.map(\.key) + [id]
        guard Quorum.isMajority(confirmed, of: configuration.voters) else { return }
        reads.inFlight = nil
        for r in reads.waiting where r.round <= round { actions.append(.readReady(id: r.id, index: r.index)) }
        reads.waiting.removeAll { $0.round <= round }
        if !reads.waiting.isEmpty { startReadRound() }
    }

    /// The shell saw `peer`'s connection to this node close from its side: its process ended
    /// (a partition closes nothing; a paused or slow process keeps its sockets open). A
    /// node whose leader that was stops counting on it at once: it forgets the leader, so it
    /// grants votes (no lease for a leader it knows is gone), and campaigns, with PreVote,
    /// after 1 + 2 x its rank among the other voters (by name) ticks instead of a whole
    /// election timeout: the survivors, who all see the close, start one after another, two
    /// ticks apart, so that the first is elected before the next campaigns, instead of
    /// splitting the vote as two random draws of the same tick would. A campaign that fails
    /// (a log behind, a split after all) waits the usual randomized timeout: tries closer
    /// together than a message's round trip would never finish. PreVote still asks a
    /// majority: a member that alone lost its connection to a live leader starts no election
    /// that the others grant.
    public mutating func peerDisconnected(_ peer: NodeID) {
        guard peer != id, leader == peer, role != .leader else { return }
        becomeFollower(term: term, leader: nil)
        let others = configuration.voters.filter { $0 != peer }.sorted()
        let rank = others.firstIndex(of: id) ?? others.count
        electionElapsed = 0
        randomizedElectionTimeout = 1 + 2 * rank
    }

    /// The shell could not read the snapshot file of a transfer to `peer` (deleted, damaged):
    /// the transfer starts over with the newest snapshot.
    public mutating func snapshotSendFailed(to peer: NodeID, _ meta: SnapshotMetadata, reason: String) {
        guard role == .leader, let pr = progress[peer], pr.state == .snapshot, pr.transfer?.snapshot == meta else { return }
        actions.append(.observe(.error(what: "snapshot-send", detail: "\(meta) to \(peer): \(reason)")))
        if let snap = snapshot, snap != meta {
            restartTransfer(to: peer, with: snap)
        }
    }

    private mutating func handleSnapshotRecoveryResponse(from peer: NodeID, _ r: SnapshotRecoveryResponse) {
        guard role == .leader, var pr = progress[peer] else { return }
        pr.recentActive = true
        if r.installed {
            // Installed: whichever snapshot it was (one this leader offered before a newer
            // offer, say), the follower's log now starts after it.
            let transfer = pr.state == .snapshot ? pr.transfer : nil
            let sent = transfer.map { $0.snapshot.index == r.index && $0.snapshot.term == r.snapshotTerm } ?? false
            let advanced = pr.update(match: r.index)
            if sent || (transfer != nil && !transfer!.accepted && advanced) {
                // The transfer is done, or the newer offer that waited for this install is
                // not needed any more (the appends show whether it is).
                if sent, let t = transfer { actions.append(.observe(.snapshotSent(to: peer, t.snapshot))) }
                pr.becomeProbe()
                progress[peer] = pr
                sendAppends(to: peer)
            } else {
                progress[peer] = pr
            }
            if advanced { maybeCommit() }
            return
        }
        guard pr.state == .snapshot, var transfer = pr.transfer else {
            progress[peer] = pr
            return
        }
        guard transfer.snapshot.index == r.index, transfer.snapshot.term == r.snapshotTerm else {
            // Busy installing another snapshot (a newer offer came while it installed): it
            // is alive and will be done; the offer waits.
            if r.installing && r.success { transfer.lastProgressTick = ticks }
            pr.transfer = transfer
            progress[peer] = pr
            return
        }
        guard r.success else {
            // The follower is not receiving it (any more: it restarted, or the install
            // failed): offer the newest snapshot now.
            progress[peer] = pr
            restartTransfer(to: peer, with: snapshot ?? transfer.snapshot)
            return
        }
        transfer.acknowledge(nextOffset: r.nextOffset, installing: r.installing, now: ticks)
        pr.transfer = transfer
        progress[peer] = pr
        sendChunks(to: peer)
    }

    // MARK: Snapshots, follower side

    private mutating func handleSnapshotRequest(from leader: NodeID, _ meta: SnapshotMetadata) {
        if meta.index <= commitIndex || log.term(at: meta.index) == meta.term {
            // This log already holds the snapshot's last entry: nothing to install.
            send(to: leader, .snapshotResponse(accepted: false, index: meta.index, lastIndex: log.lastIndex))
            return
        }
        if let r = receiving {
            if r.installing {
                // Busy making another snapshot durable: say so, and the leader waits.
                send(to: leader, .snapshotRecoveryResponse(SnapshotRecoveryResponse(
                    index: r.snapshot.index, snapshotTerm: r.snapshot.term, nextOffset: r.snapshot.size, installed: false, success: true,
                    installing: true)))
                return
            }
            if r.snapshot == meta && r.from == leader {
                // Asked again (a lost answer): go on from where the file stands.
                send(to: leader, .snapshotResponse(accepted: true, index: meta.index, lastIndex: log.lastIndex))
                return
            }
            actions.append(.abortSnapshotReceive(r.snapshot))
        }
        receiving = Receiving(from: leader, snapshot: meta)
        actions.append(.beginSnapshotReceive(from: leader, snapshot: meta))
        setRole(.snapshotting, leader: leader)
        send(to: leader, .snapshotResponse(accepted: true, index: meta.index, lastIndex: log.lastIndex))
    }

    private mutating func handleSnapshotChunk(from leader: NodeID, _ c: SnapshotRecoveryRequest) {
        guard var r = receiving, r.snapshot.index == c.index, r.snapshot.term == c.snapshotTerm else {
            let installed = snapshot.map { $0.index == c.index && $0.term == c.snapshotTerm } ?? false
            send(to: leader, .snapshotRecoveryResponse(SnapshotRecoveryResponse(
                index: c.index, snapshotTerm: c.snapshotTerm, nextOffset: installed ? c.offset + UInt64(c.data.count) : 0,
                installed: installed, success: installed)))
            return
        }
        if !r.installing && c.offset == r.nextOffset {
            if r.nextOffset + UInt64(c.data.count) > r.snapshot.size || (c.done && r.nextOffset + UInt64(c.data.count) != r.snapshot.size) {
                actions.append(.observe(.error(what: "snapshot-receive", detail: "chunk at \(c.offset) of \(c.data.count) bytes does not fit \(r.snapshot)")))
                actions.append(.abortSnapshotReceive(r.snapshot))
                receiving = nil
                setRole(restingRole, leader: leader)
                send(to: leader, .snapshotRecoveryResponse(SnapshotRecoveryResponse(index: c.index, snapshotTerm: c.snapshotTerm, nextOffset: 0, installed: false, success: false)))
                return
            }
            actions.append(.writeSnapshotChunk(snapshot: r.snapshot, offset: c.offset, data: c.data))
            r.nextOffset += UInt64(c.data.count)
            if c.done {
                r.installing = true
                actions.append(.installSnapshot(r.snapshot))
            }
            receiving = r
        }
        send(to: leader, .snapshotRecoveryResponse(SnapshotRecoveryResponse(
            index: c.index, snapshotTerm: c.snapshotTerm, nextOffset: r.nextOffset, installed: false, success: true, installing: r.installing)))
    }

    /// The shell installed the snapshot that `installSnapshot` named: its file is durable and
    /// the state machine holds its state. False (and nothing done) when no install of `meta`
    /// is under way: the shell must then not adopt the state.
    @discardableResult
    public mutating func snapshotInstalled(_ meta: SnapshotMetadata) -> Bool {
        guard let r = receiving, r.installing, r.snapshot == meta else { return false }
        receiving = nil
        if log.term(at: meta.index) == meta.term {
            // Raft paper 7: keep the entries after the snapshot when they match.
            if meta.index > log.prevIndex {
                log.compact(through: meta.index, term: meta.term)
                actions.append(.observe(.compact(through: meta.index)))
                actions.append(.compactLog(through: meta.index, term: meta.term))
            }
        } else {
            // The snapshot replaces the log: what it covers is compacted away; entries after
            // it, of another history (the log differs at the snapshot's index), are a
            // conflicting suffix.
            if log.lastIndex > meta.index { actions.append(.observe(.truncate(from: meta.index + 1))) }
            if log.lastIndex > log.prevIndex {
                log.truncate(from: log.firstIndex)
                actions.append(.truncateLog(from: log.firstIndex))
            }
            log.compact(through: meta.index, term: meta.term)
            actions.append(.observe(.compact(through: meta.index)))
            actions.append(.compactLog(through: meta.index, term: meta.term))
        }
        snapshot = meta
        appliedBytesSinceSnapshot = 0
        snapshotWeight = meta.size
        configs = [ConfigAt(index: meta.index, configuration: meta.configuration)]
        for e in log.entries where e.type == .config {
            if let c = e.configuration { configs.append(ConfigAt(index: e.index, configuration: c)) }
        }
        actions.append(.observe(.snapshotInstalled(from: r.from, meta)))
        actions.append(.observe(.config(index: configurationIndex, configuration, committed: configurationIndex <= max(commitIndex, meta.index))))
        appliedIndex = meta.index
        if meta.index > commitIndex {
            commitIndex = meta.index
            actions.append(.observe(.commit(meta.index)))
        }
        if role == .snapshotting { setRole(restingRole, leader: leader) }
        // To the leader that sent it, and to the current leader if another (it may have
        // offered a newer snapshot meanwhile, which this install makes needless).
        for to in Set([r.from] + (leader.map { [$0] } ?? [])).sorted() {
            send(to: to, .snapshotRecoveryResponse(SnapshotRecoveryResponse(
                index: meta.index, snapshotTerm: meta.term, nextOffset: meta.size, installed: true, success: true)))
        }
        applyCommitted()
        return true
    }

    /// The shell could not take (`meta` nil) or install (`meta` the snapshot) a snapshot. A
    /// failed install is discarded and the leader starts over; a failed take is retried at
    /// the next threshold. A failure of a snapshot no longer being received is ignored: a
    /// take's failure never ends a receive.
    public mutating func snapshotFailed(_ meta: SnapshotMetadata?, reason: String) {
        if let meta {
            guard let r = receiving, r.snapshot == meta else { return }
            receiving = nil
            actions.append(.observe(.error(what: "snapshot-install", detail: reason)))
            if role == .snapshotting { setRole(restingRole, leader: leader) }
            send(to: r.from, .snapshotRecoveryResponse(SnapshotRecoveryResponse(
                index: r.snapshot.index, snapshotTerm: r.snapshot.term, nextOffset: 0, installed: false, success: false)))
        } else {
            snapshotRequested = false
            actions.append(.observe(.error(what: "snapshot-take", detail: reason)))
        }
    }

    /// The lowest index that a live follower still needs on a leader: the match of each
    /// follower heard from within two election timeouts, or the snapshot it is being sent.
    /// A leader that compacts past it sends that follower another snapshot; after an install
    /// that took seconds under steady writes, that one takes seconds too, and the next, for
    /// as long as the writes go on.
    private func catchUpFloor() -> LogIndex? {
        guard role == .leader else { return nil }
        let recent = UInt64(2 * max(1, settings.electionTicks))
        var floor: LogIndex?
        for (_, pr) in progress where pr.ticksSinceHeard(at: ticks) <= recent {
            let needs: LogIndex
            if pr.state == .snapshot {
                guard let t = pr.transfer, ticks - min(t.lastProgressTick, ticks) < transferPatienceTicks else { continue }
                needs = t.snapshot.index
            } else {
                needs = pr.match
            }
            floor = min(floor ?? needs, needs)
        }
        return floor
    }

    // MARK: Snapshots taken here

    /// Asks for a snapshot of the applied state now (the client's `snapshot`). Returns the
    /// index it will cover, or the newest snapshot's when nothing was applied since.
    public mutating func requestSnapshot() -> LogIndex {
        let current = snapshot?.index ?? 0
        guard appliedIndex > current, receiving == nil else { return current }
        if !snapshotRequested { requestSnapshotAction() }
        return appliedIndex
    }

    /// The shell made the snapshot that `takeSnapshot` asked for durable; `meta.size` is its
    /// file's size, `stateBytes` (when the shell knows) the bytes of state it serialised. The
    /// log before it, less the trailing entries, is compacted.
    public mutating func snapshotTaken(_ meta: SnapshotMetadata, stateBytes: UInt64? = nil) {
        snapshotRequested = false
        guard meta.index > (snapshot?.index ?? 0) || snapshot == nil, meta.index <= appliedIndex,
            log.term(at: meta.index) == meta.term || meta.index == log.prevIndex
        else { return }
        snapshot = meta
        appliedBytesSinceSnapshot = log.bytes(from: meta.index + 1, through: appliedIndex)
        snapshotWeight = stateBytes ?? meta.size
        let trailing = LogIndex(max(0, settings.snapshotTrailing))
        var point = meta.index > trailing ? meta.index - trailing : 0
        if let floor = catchUpFloor(), floor < point, log.bytes(from: floor + 1, through: point) <= settings.maxRetainedBytes {
            point = floor
        }
        if point > log.prevIndex, let t = log.term(at: point) {
            log.compact(through: point, term: t)
            // Keep the configuration in force at the compaction point as the base.
            let base = configs.last { $0.index <= point } ?? configs[0]
            configs = [base] + configs.filter { $0.index > point }
            actions.append(.observe(.compact(through: point)))
            actions.append(.compactLog(through: point, term: t))
        }
    }
}

/// A leader's linearizable reads in progress (ReadIndex).
struct ReadRounds: Sendable {
    /// The last confirmation round sent, and the one sent and not yet confirmed.
    var round: UInt64 = 0
    var inFlight: UInt64?
    /// The highest round each voter answered.
    var acks: [NodeID: UInt64] = [:]
    /// Reads with the commit index they must see and the round that confirms them.
    var waiting: [(id: UInt64, index: LogIndex, round: UInt64)] = []
    /// Reads that came before this leader committed an entry of its term.
    var beforeTermCommit: [UInt64] = []

    var all: [UInt64] { waiting.map(\.id) + beforeTermCommit }
}
