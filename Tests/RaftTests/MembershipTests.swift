import Raft
import Testing

/// Dissertation chapter 4: single-server membership changes through configuration entries
/// that take effect when appended; learners; goraft's AddPeer and RemovePeer.
@Suite("Membership (dissertation ch. 4)")
struct MembershipTests {
    /// n1..n3 voters and n4 a learner, n1 elected.
    private func clusterWithLearner() -> TestCluster {
        let ids = ["n1", "n2", "n3", "n4"]
        let conf = Configuration(voters: ["n1", "n2", "n3"], learners: ["n4"])
        let cluster = TestCluster(ids, states: Dictionary(uniqueKeysWithValues: ids.map { ($0, DurableState.bootstrap(conf)) }))
        cluster.elect("n1")
        return cluster
    }

    /// A node that holds no configuration (started to be added, or wiped to be added again
    /// under its old name) grants neither votes nor pre-votes: its empty log would call any
    /// candidate up to date. The simulator (seed 264, before this rule) had a removed node,
    /// restarted with its old log and configuration, elected by a wiped node's vote.
    @Test func nodeWithoutConfigurationDoesNotVote() {
        var core = RaftCore(id: "n1", settings: .test(), seed: 1, state: DurableState())
        for preVote in [true, false] {
            core.step(.requestVote(from: "n3", to: "n1", term: 12, lastIndex: 15, lastTerm: 6, preVote: preVote))
            let answers = core.takeActions().compactMap { action -> Bool? in
                if case let .send(m) = action, case let .requestVoteResponse(granted, _) = m.body { return granted }
                return nil
            }
            #expect(answers == [false], "preVote \(preVote)")
        }
        #expect(core.votedFor == nil)
    }

    /// Found by raft-sim --machines (storm seed 592): n1 and n2, each removed, wiped and added
    /// again, each installed a stale snapshot (index 32, from a deposed leader) of a
    /// configuration {n1, n2, n3} they were voters of; n2 voted n1 leader of term 16 without
    /// the entries to 66 that {n3, n9, n11} had committed. A node that started with no
    /// configuration is joining, durably, until a leader's AppendEntries catches it up.
    @Test func wipedNodeWithAStaleSnapshotNeitherVotesNorCampaignsUntilCaughtUp() {
        var fresh = RaftCore(id: "n1", settings: .test(), seed: 1, state: DurableState())
        #expect(fresh.joining)
        #expect(fresh.takeActions().contains(.saveHardState(HardState(term: 0, votedFor: nil, joining: true))), "persisted at the start")

        // After the stale install (and a crash): a voter of {n1, n2, n3} in its own eyes.
        let stale = SnapshotMetadata(index: 32, term: 11, configuration: Configuration(voters: ["n1", "n2", "n3"]), size: 154)
        let restarted = DurableState(hardState: HardState(term: 15, joining: true), snapshot: stale, log: RaftLog(prevIndex: 32, prevTerm: 11))
        var core = RaftCore(id: "n1", settings: .test(), seed: 1, state: restarted)
        #expect(core.joining && core.configuration.isVoter("n1"))
        for _ in 0..<(4 * Settings.test().electionTicks) { core.tick() }
        #expect(!core.takeActions().contains { if case let .send(m) = $0, case .requestVote = m.body { true } else { false } }, "campaigned")
        for preVote in [true, false] {
            core.step(.requestVote(from: "n2", to: "n1", term: 16, lastIndex: 32, lastTerm: 11, preVote: preVote))
            let granted = core.takeActions().contains {
                if case let .send(m) = $0, case .requestVoteResponse(true, _) = m.body { true } else { false }
            }
            #expect(!granted, "granted a \(preVote ? "pre-vote" : "vote") while joining")
        }

        // The leader of term 16 catches it up to its commit index: it is a member like any other.
        let config = Configuration(voters: ["n3", "n9", "n11"], learners: ["n1"])
        let entries = [Entry(index: 33, term: 16, type: .config, payload: config.encoded())]
        core.step(.appendEntries(from: "n9", to: "n1", term: 16, prev: 32, prevTerm: 11, entries, commit: 33))
        #expect(!core.joining)
        #expect(core.takeActions().contains(.saveHardState(HardState(term: 16, votedFor: nil, joining: false))))
    }

    @Test func configurationTakesEffectWhenAppendedNotWhenCommitted() throws {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.add("n4")
        let (index, _) = try #require(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: false)).value)
        #expect(cluster["n1"].configuration.isLearner("n4"))
        #expect(cluster["n1"].commitIndex < index)
        cluster.deliverOne(where: { $0.to == "n2" && $0.appendEntries != nil })
        #expect(cluster["n2"].log.lastIndex == index)
        #expect(cluster["n2"].commitIndex < index)
        #expect(cluster["n2"].configuration.isLearner("n4"))
        #expect(cluster["n2"].configurationIndex == index)
        #expect(!cluster["n3"].configuration.isMember("n4"))
    }

    @Test func truncatedConfigurationEntryNoLongerTakesEffect() {
        // An uncommitted configuration entry overwritten by a new leader: the configuration
        // before it is in force again.
        let voters = ["n1", "n2", "n3"]
        var s = state(voters: voters, term: 1, log: [1])
        let added = Configuration(voters: voters, learners: ["n4"])
        s.log = RaftLog(entries: entries(terms: [1]) + [Entry(index: 2, term: 1, type: .config, payload: added.encoded())])
        let cluster = TestCluster(states: ["n2": s])
        #expect(cluster["n2"].configuration == added)
        cluster.step(.appendEntries(from: "n3", to: "n2", term: 2, prev: 1, prevTerm: 1, [Entry(index: 2, term: 2, type: .noop)]))
        #expect(cluster["n2"].configuration == Configuration(voters: voters))
        #expect(cluster["n2"].configurationIndex == 0)
    }

    @Test func onlyOneUncommittedConfigurationChangeAtATime() {
        let cluster = TestCluster()
        cluster.elect("n1")
        #expect(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: false)).value != nil)
        #expect(cluster.proposeChange("n1", .addLearner("n5", address: "a5", promote: false)).error == .configChangeInProgress)
        cluster.deliverAll()
        #expect(cluster.proposeChange("n1", .addLearner("n5", address: "a5", promote: false)).value != nil)
    }

    @Test func noConfigurationChangeBeforeLeaderCommitsEntryOfItsTerm() {
        let cluster = TestCluster()
        cluster.tickUntilCampaign("n1")
        cluster.deliver(where: \.isVoteTraffic)
        #expect(cluster["n1"].role == .leader)
        #expect(!cluster["n1"].hasCommittedInTerm)
        #expect(cluster.proposeChange("n1", .remove("n3")).error == .leaderNotReady)
        cluster.deliverAll()
        #expect(cluster["n1"].hasCommittedInTerm)
        #expect(cluster.proposeChange("n1", .remove("n3")).value != nil)
    }

    @Test func configOnCommitMutationAllowsChangeBeforeLeaderCommits() {
        let cluster = TestCluster(settings: .test { $0.mutations = [.configOnCommit] })
        cluster.tickUntilCampaign("n1")
        cluster.deliver(where: \.isVoteTraffic)
        #expect(!cluster["n1"].hasCommittedInTerm)
        #expect(cluster.proposeChange("n1", .remove("n3")).value != nil)
    }

    @Test func proposeChangeOnFollowerFailsWithLeaderHint() {
        let cluster = TestCluster()
        cluster.elect("n1")
        #expect(cluster.proposeChange("n2", .remove("n3")).error == .notLeader(leader: "n1"))
    }

    @Test func addedLearnerIsCaughtUpThenPromoted() {
        let cluster = TestCluster()
        cluster.elect("n1")
        _ = cluster.propose("n1", (0..<20).map { [UInt8($0)] })
        cluster.deliverAll()
        cluster.add("n4")
        #expect(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: true)).value != nil)
        cluster.deliverAll()
        cluster.heartbeat("n1", rounds: 3)
        for id in cluster.ids {
            #expect(cluster[id].configuration.voters == ["n1", "n2", "n3", "n4"], "\(id)")
            #expect(cluster[id].configuration.promoting.isEmpty, "\(id)")
        }
        #expect(cluster["n4"].role == .follower)
        #expect(cluster["n4"].log.lastIndex == cluster["n1"].log.lastIndex)
        // It was a learner first, and caught up before its promotion was appended.
        let roles = cluster.node("n4").observations.compactMap { o -> Role? in
            if case let .role(r, _, _) = o { return r }
            return nil
        }
        #expect(roles.firstIndex(of: .learner) != nil)
        #expect(roles.last == .follower)
        let promotedAt = cluster["n1"].latestConfigurationIndex
        let addedAt = cluster["n1"].log.entries.last { $0.type == .config && $0.index < promotedAt }!.index
        #expect(promotedAt > addedAt)
    }

    @Test func aMemberSentTheLogFromItsStartTakesNoSnapshotBeforeItKnowsAConfiguration() throws {
        // Snapshots every 5 entries, the log kept whole, 4 entries a request: the new member is
        // sent entries 1..., not the leader's snapshot at index 0, which alone holds the first
        // configuration, and applies some before it reaches the entry that added it.
        let cluster = TestCluster(settings: .test { $0.snapshotThreshold = 5; $0.snapshotTrailing = 1000; $0.maxEntriesPerRequest = 4 })
        cluster.elect("n1")
        for i in 0..<20 { _ = cluster.propose("n1", [[UInt8(i)]]) }
        cluster.deliverAll()
        #expect(cluster["n1"].log.prevIndex == 0)
        cluster.add("n4")
        #expect(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: true)).value != nil)
        cluster.deliverAll()
        cluster.heartbeat("n1", rounds: 3)
        #expect(cluster["n4"].appliedIndex == cluster["n1"].commitIndex)
        let takes = cluster.node("n4").history.compactMap { a -> (LogIndex, Configuration)? in
            if case let .takeSnapshot(index, _, configuration) = a { (index, configuration) } else { nil }
        }
        #expect(!takes.isEmpty, "n4 took no snapshot at all")
        for (index, c) in takes {
            #expect(!c.isEmpty, "n4's snapshot at \(index) claims an empty configuration")
            #expect(c.isMember("n4"), "n4's snapshot at \(index): \(c.voters)")
        }
    }

    @Test func learnerKeptAFewEntriesBehindByASteadyStreamOfWritesIsPromoted() {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.add("n4")
        #expect(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: true)).value != nil)
        // A write every tick; what goes to n4 arrives three ticks late, so it is always a
        // few entries short of the commit index.
        var promotedAfter: Int?
        var sentToN4: [Set<String>] = []
        for t in 0..<(10 * cluster.settings.electionTicks) {
            sentToN4.append(Set(cluster.queued(where: { $0.to == "n4" }).map(\.description)))
            let late = sentToN4.count > 3 ? sentToN4.removeFirst() : []
            _ = cluster.propose("n1", "w\(t)")
            cluster.tick("n1")
            cluster.deliver(where: { $0.to != "n4" || late.contains($0.description) })
            if !cluster["n1"].configuration.isLearner("n4") && cluster["n1"].configuration.isVoter("n4") {
                promotedAfter = t
                break
            }
        }
        #expect(promotedAfter != nil, "n4 stayed a learner under steady writes")
        #expect((promotedAfter ?? .max) < 3 * cluster.settings.electionTicks)
    }

    @Test func learnerThatCannotCatchUpIsNotPromoted() {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.add("n4")
        cluster.isolate("n4")
        #expect(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: true)).value != nil)
        cluster.deliverAll()
        cluster.heartbeat("n1", rounds: 10)
        #expect(cluster["n1"].configuration.isLearner("n4"))
        #expect(cluster["n1"].configuration.promoting == ["n4"])
    }

    @Test func learnersDoNotCountForQuorum() {
        let cluster = clusterWithLearner()
        let commit = cluster["n1"].commitIndex
        cluster.cutLink(from: "n1", to: "n2")
        cluster.cutLink(from: "n1", to: "n3")
        _ = cluster.propose("n1", "x")
        cluster.deliverAll()
        // The leader and the learner hold it: two of four members, but one of three voters.
        #expect(cluster["n4"].log.lastIndex == cluster["n1"].log.lastIndex)
        #expect(cluster["n1"].commitIndex == commit)
    }

    @Test func learnersNeverCampaign() {
        let cluster = clusterWithLearner()
        cluster.isolate("n4")
        let term = cluster["n4"].term
        let actions = cluster.tick("n4", times: 10 * Settings().electionTicks)
        #expect(cluster["n4"].role == .learner)
        #expect(cluster["n4"].term == term)
        #expect(!actions.messages.contains { $0.requestVote != nil })
    }

    @Test func removedLeaderKeepsLeadingUntilChangeCommitsThenStepsDown() {
        let cluster = TestCluster()
        cluster.elect("n1")
        #expect(cluster.proposeChange("n1", .remove("n1")).value != nil)
        #expect(!cluster["n1"].configuration.isMember("n1"))
        #expect(cluster["n1"].role == .leader)
        #expect(cluster.propose("n1", "while-leaving").value != nil)
        #expect(!cluster.node("n1").observations.contains(.removed))
        cluster.deliverAll()
        #expect(cluster["n1"].role == .follower)
        #expect(cluster["n1"].isRemoved)
        #expect(cluster.node("n1").observations.contains(.removed))
    }

    @Test func leaderDeposedBeforeItsRemovalCommitsLearnsOfItFromTheNextLeader() throws {
        // Found by harness explore --sim (harness/scenarios/found/removed-leader-deposed): the
        // leader appends its own removal, loses its role before the change commits, and the
        // next leader commits it. The old leader is no voter of its newest configuration, so it
        // never campaigns, and no leader of that configuration sends it anything: it must ask.
        let cluster = TestCluster()
        cluster.elect("n1")
        let (index, _) = try #require(cluster.proposeChange("n1", .remove("n1")).value)
        cluster.cutLink(from: "n2", to: "n1")
        cluster.cutLink(from: "n3", to: "n1")
        cluster.deliverAll()
        #expect(cluster["n2"].log.lastIndex >= index && cluster["n3"].log.lastIndex >= index)
        cluster.isolate("n1")
        cluster.elect("n2")
        cluster.heartbeat("n2")
        #expect(cluster["n2"].commitIndex >= index)
        cluster.heal()
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(cluster["n1"].role != .leader)
        let removed = cluster["n1"].isRemoved
        #expect(removed)
        #expect(cluster.node("n1").observations.contains(.removed))
        #expect(cluster.leaders == ["n2"])
    }

    @Test func nodeOutsideAnUncommittedConfigurationThatIsThenReplacedStaysAMember() throws {
        // The other side of asking: the change that left it out never commits (the next leader
        // does not have it), so no leader may call it removed, and it votes and leads again.
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.isolate("n1")
        let (index, _) = try #require(cluster.proposeChange("n1", .remove("n1")).value)
        cluster.elect("n2")
        #expect(cluster["n2"].log.term(at: index) != cluster["n1"].log.term(at: index))
        cluster.heal()
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(!cluster["n1"].isRemoved)
        #expect(cluster["n1"].configuration.isVoter("n1"))
    }

    @Test func staleRemovalNoticeDoesNotStopANodeThatANewerLeaderReplicatesTo() {
        // Found by raft-sim --machines (seed 2166): n4, removed at index 58 in term 15, was
        // wiped and added again at index 73 by the leader of term 16. Catching up (its log at
        // 48), it got the old leader's late notice of the removal and stopped for good: the
        // notice's configuration was newer than any it held yet. A leader of a newer term that
        // replicates to it counts it a member; should it not, it tells it in its own term.
        let conf = Configuration(voters: ["n1", "n2", "n3", "n4"])
        var core = RaftCore(id: "n4", settings: .test(), seed: 1, state: .bootstrap(conf))
        core.step(Message(from: "n2", to: "n4", term: 16, body: .heartbeat(commitIndex: 0)))
        #expect(core.leader == "n2" && core.term == 16)
        core.step(Message(from: "n3", to: "n4", term: 15, body: .removed(configIndex: 58)))
        #expect(!core.isRemoved)
        #expect(!core.takeActions().contains(.observe(.removed)))
        // The notice of its current leader's term is believed.
        core.step(Message(from: "n2", to: "n4", term: 16, body: .removed(configIndex: 80)))
        #expect(core.isRemoved)
    }

    @Test func removedLeaderNeedsMajorityOfNewConfigurationToCommitItsRemoval() throws {
        // The leader is not in the new configuration, so it does not count itself.
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.cutLink(from: "n1", to: "n3")
        let (index, _) = try #require(cluster.proposeChange("n1", .remove("n1")).value)
        cluster.deliverAll()
        #expect(cluster["n2"].log.lastIndex >= index)
        #expect(cluster["n1"].commitIndex < index)
        #expect(cluster["n1"].role == .leader)
    }

    @Test func removedNodeStopsCampaigning() {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.isolate("n3")
        #expect(cluster.proposeChange("n1", .remove("n3")).value != nil)
        cluster.deliverAll()
        // n3 never got the change; it polls while cut off.
        cluster.tick("n3", times: 3 * Settings().electionTicks)
        cluster.heal()
        cluster.heartbeat("n1")
        #expect(cluster["n3"].isRemoved)
        #expect(cluster.node("n3").observations.contains(.removed))
        let actions = cluster.tick("n3", times: 10 * Settings().electionTicks)
        #expect(!actions.messages.contains { $0.requestVote != nil })
        #expect(cluster["n3"].role == .follower)
    }

    @Test func removedNodeUnawareOfItsRemovalDoesNotDisruptLeader() {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.isolate("n3")
        #expect(cluster.proposeChange("n1", .remove("n3")).value != nil)
        cluster.deliverAll()
        let term = cluster["n1"].term
        cluster.tickAll(times: 3 * Settings().electionTicks)
        cluster.heal()
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(cluster.leaders == ["n1"])
        #expect(cluster["n1"].term == term && cluster["n2"].term == term)
    }

    @Test func removedNodeWithHigherTermStopsCampaigning() {
        // Without PreVote the cut-off node raises its term while it campaigns; the leader's
        // notice of its removal (a committed fact) still reaches it.
        let cluster = TestCluster(settings: .test(preVote: false))
        cluster.elect("n1")
        cluster.isolate("n3")
        #expect(cluster.proposeChange("n1", .remove("n3")).value != nil)
        cluster.deliverAll()
        cluster.tick("n3", times: 3 * Settings().electionTicks)
        #expect(cluster["n3"].term > cluster["n1"].term)
        cluster.heal()
        cluster.heartbeat("n1", rounds: 3)
        let removed = cluster["n3"].isRemoved
        #expect(removed)
        let actions = cluster.tick("n3", times: 10 * Settings().electionTicks)
        let campaigns = actions.messages.filter { $0.requestVote != nil }.count
        #expect(campaigns == 0)
    }

    @Test func removedNodeCutOffLongerThanTheNoticeWindowStopsCampaigning() {
        // The leader tells a removed member for a while; one cut off for longer still has to
        // learn, one way or another, that it must stop.
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.isolate("n3")
        #expect(cluster.proposeChange("n1", .remove("n3")).value != nil)
        cluster.deliverAll()
        cluster.tickAll(times: 100 * Settings().electionTicks)
        cluster.heal()
        cluster.tickAll(times: 10 * Settings().electionTicks)
        let removed = cluster["n3"].isRemoved
        #expect(removed)
        let actions = cluster.tick("n3", times: 10 * Settings().electionTicks)
        let campaigns = actions.messages.filter { $0.requestVote != nil }.count
        #expect(campaigns == 0)
    }

    @Test(arguments: [
        (ConfigurationChange.addLearner("n2", address: "a2", promote: false), ConfigurationError.alreadyMember("n2")),
        (.addLearner("n4", address: "a4", promote: true), .alreadyMember("n4")),
        (.promote("n2"), .alreadyVoter("n2")),
        (.promote("n9"), .notMember("n9")),
        (.remove("n9"), .notMember("n9")),
    ])
    func invalidChangeIsRefused(change: ConfigurationChange, error: ConfigurationError) {
        let cluster = clusterWithLearner()
        let last = cluster["n1"].log.lastIndex
        #expect(cluster.proposeChange("n1", change).error == .invalidChange(error))
        #expect(cluster["n1"].log.lastIndex == last)
    }

    @Test func removingTheLastVoterIsRefused() {
        let cluster = TestCluster(["n1"])
        cluster.elect("n1")
        #expect(cluster.proposeChange("n1", .remove("n1")).error == .invalidChange(.lastVoter("n1")))
    }
}
