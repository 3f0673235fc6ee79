import Raft
import Testing

/// Raft paper §5.2 (leader election), PreVote and CheckQuorum (dissertation 9.6, 6.2), and
/// the persistence of term and vote.
@Suite("Elections (§5.2)")
struct ElectionTests {
    @Test func followerCampaignsAfterRandomizedTimeoutBetweenTAndTwoT() {
        let t = Settings().electionTicks
        var timeouts: Set<Int> = []
        for seed in UInt64(1)...40 {
            let cluster = TestCluster(seed: seed)
            let ticks = cluster.tickUntilCampaign("n1", limit: 3 * t)
            #expect(ticks >= t && ticks < 2 * t, "seed \(seed): campaigned after \(ticks) ticks")
            timeouts.insert(ticks)
        }
        // Randomized: not every seed picks the same timeout.
        #expect(timeouts.count > 5)
    }

    @Test func candidateWithMajorityBecomesLeaderAndAppendsNopOfItsTerm() throws {
        let cluster = TestCluster(settings: .test(preVote: false))
        cluster.tickUntilCampaign("n1")
        #expect(cluster["n1"].role == .candidate)
        #expect(cluster["n1"].term == 1)
        cluster.deliver(where: \.isVoteTraffic)
        let n1 = cluster["n1"]
        #expect(n1.role == .leader)
        let last = try #require(n1.log.entry(at: n1.log.lastIndex))
        #expect(last.type == .noop)
        #expect(last.term == n1.term)
    }

    @Test func singleVoterClusterElectsItselfAndCommitsItsNop() {
        let cluster = TestCluster(["n1"])
        cluster.tickUntilCampaign("n1")
        #expect(cluster["n1"].role == .leader)
        #expect(cluster["n1"].commitIndex == 1)
    }

    @Test func splitVoteElectsNoLeaderAndALaterTermDoes() {
        // Four voters: n1 and n2 campaign in term 1; n3 votes for n1, n4 for n2; 2 of 4 is no majority.
        let cluster = TestCluster(["n1", "n2", "n3", "n4"], settings: .test(preVote: false))
        cluster.tickUntilCampaign("n1")
        cluster.tickUntilCampaign("n2")
        #expect(cluster["n1"].term == 1 && cluster["n2"].term == 1)
        cluster.deliver(where: { $0.from == "n1" && $0.to == "n3" })
        cluster.deliver(where: { $0.from == "n2" && $0.to == "n4" })
        cluster.deliverAll()
        #expect(cluster.leaders.isEmpty)
        #expect(cluster["n3"].votedFor == "n1")
        #expect(cluster["n4"].votedFor == "n2")
        // The next timeout starts term 2, which someone wins.
        cluster.tickUntilCampaign("n3")
        cluster.deliverAll()
        #expect(cluster.leaders == ["n3"])
        #expect(cluster["n3"].term == 2)
    }

    @Test func followersOfALeaderWhoseConnectionClosedElectAnotherWithinAHeartbeat() {
        let settings = Settings.test(preVote: true, checkQuorum: true)
        for seed in UInt64(1)...20 {
            let cluster = TestCluster(settings: settings, seed: seed)
            cluster.elect("n1")
            cluster.tickAll(times: settings.heartbeatTicks)
            #expect(cluster["n2"].leader == "n1" && cluster["n3"].leader == "n1")
            let term = cluster["n1"].term
            // n1's process dies: its connections close on both followers.
            cluster.isolate("n1")
            cluster.peerDisconnected("n2", from: "n1")
            cluster.peerDisconnected("n3", from: "n1")
            var ticks = 0
            while !cluster.leaders.contains(where: { $0 != "n1" }) && ticks < settings.electionTicks {
                for id in ["n2", "n3"] { cluster.tick(id) }
                cluster.deliverAll()
                ticks += 1
            }
            // n2 (the first survivor by name) campaigns after one tick, n3 two ticks later:
            // elected within a heartbeat interval, well before an election timeout.
            #expect(cluster.leaders.contains { $0 != "n1" }, "seed \(seed): no new leader in \(ticks) ticks")
            #expect(ticks <= settings.heartbeatTicks, "seed \(seed): \(ticks) ticks")
            #expect(cluster.leaders.contains("n2"), "seed \(seed): \(cluster.leaders)")
            #expect(cluster["n2"].term > term || cluster["n3"].term > term)
        }
    }

    @Test func aLoneClosedConnectionToALiveLeaderDisturbsNothing() {
        let settings = Settings.test(preVote: true, checkQuorum: true)
        let cluster = TestCluster(settings: settings, seed: 3)
        cluster.elect("n1")
        cluster.tickAll(times: settings.heartbeatTicks)
        let term = cluster["n1"].term
        // Only n2 sees a close; n1 lives and n3 still hears from it: n3 refuses n2's poll
        // (its lease), n2 hears n1's next heartbeat and follows it again.
        cluster.peerDisconnected("n2", from: "n1")
        #expect(cluster["n2"].leader == nil)
        // A peer that is not the leader: nothing changes.
        cluster.peerDisconnected("n3", from: "n2")
        #expect(cluster["n3"].leader == "n1")
        cluster.tickAll(times: 3 * settings.heartbeatTicks)
        #expect(cluster.leaders == ["n1"])
        let terms = ["n1", "n2", "n3"].map { cluster[$0].term }
        #expect(terms == [term, term, term])
        #expect(cluster["n2"].leader == "n1")
    }

    @Test func preCandidateDoesNotRaiseItsTerm() {
        let cluster = TestCluster(settings: .test(preVote: true))
        var actions: [Action] = []
        while cluster["n1"].role == .follower { actions += cluster.tick("n1") }
        #expect(cluster["n1"].role == .preCandidate)
        #expect(cluster["n1"].term == 0)
        #expect(cluster["n1"].votedFor == nil)
        #expect(!actions.contains { $0.savedHardState != nil })
        // The poll names the term it would campaign in.
        let polls = actions.messages.compactMap { m in m.requestVote.map { (m.term, $0.preVote) } }
        #expect(polls.count == 2)
        #expect(polls.allSatisfy { $0 == (1, true) })
    }

    @Test func grantingPreVoteChangesNothingOnTheVoter() {
        let cluster = TestCluster(settings: .test(preVote: true))
        cluster.tickUntilCampaign("n1")
        let actions = cluster.step(cluster.drop(where: { $0.to == "n2" })[0])
        #expect(cluster["n2"].term == 0)
        #expect(cluster["n2"].votedFor == nil)
        #expect(!actions.contains { $0.savedHardState != nil })
        #expect(actions.messages.map(\.voteResponse?.granted) == [true])
    }

    @Test func preVoteWonThenElectionInNextTerm() {
        let cluster = TestCluster(settings: .test(preVote: true))
        cluster.tickUntilCampaign("n1")
        cluster.deliverAll()
        #expect(cluster["n1"].role == .leader)
        #expect(cluster["n1"].term == 1)
    }

    @Test func isolatedNodeRejoiningDoesNotRaiseTermOrDeposeLeader() {
        // PreVote + CheckQuorum: a partitioned node polls, never wins a poll, never raises its term.
        let cluster = TestCluster(settings: .test(preVote: true, checkQuorum: true))
        cluster.elect("n1")
        let term = cluster["n1"].term
        cluster.isolate("n3")
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(cluster["n3"].term == term)
        cluster.heal()
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(cluster.leaders == ["n1"])
        #expect(cluster.ids.allSatisfy { cluster[$0].term == term })
        #expect(cluster["n3"].leader == "n1")
    }

    @Test func restartedFollowerDoesNotDisruptHealthyLeader() {
        // After a restart it knows no leader and polls; the others heard from n1 recently.
        let cluster = TestCluster()
        cluster.elect("n1")
        let term = cluster["n1"].term
        cluster.restart("n3")
        cluster.tickUntilCampaign("n3")
        cluster.deliverAll()
        #expect(cluster.leaders == ["n1"])
        #expect(cluster.ids.allSatisfy { cluster[$0].term == term })
        cluster.heartbeat("n1")
        #expect(cluster["n3"].leader == "n1")
    }

    @Test func withoutPreVoteAndCheckQuorumRejoiningNodeDeposesLeader() {
        // The same schedule as above with both switches off: the rejoining node's higher term
        // deposes a healthy leader. This is what PreVote and CheckQuorum prevent.
        let cluster = TestCluster(settings: .test(preVote: false, checkQuorum: false))
        cluster.elect("n1")
        let term = cluster["n1"].term
        cluster.isolate("n3")
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(cluster["n3"].term > term)
        cluster.heal()
        cluster.heartbeat("n1")
        #expect(cluster["n1"].term > term)
        #expect(cluster["n1"].role == .follower)
    }

    // MARK: Durable term and vote

    @Test func grantedVoteIsPersistedBeforeItIsSent() throws {
        let cluster = TestCluster(settings: .test(preVote: false))
        let actions = cluster.step(.requestVote(from: "n1", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        let saved = try #require(actions.firstIndex { $0.savedHardState == HardState(term: 1, votedFor: "n1") })
        let granted = try #require(actions.firstIndex { $0.message?.voteResponse?.granted == true })
        #expect(saved < granted)
    }

    @Test func candidateTermAndVoteArePersistedBeforeRequestVoteIsSent() throws {
        let cluster = TestCluster(settings: .test(preVote: false))
        var actions: [Action] = []
        while cluster["n1"].role != .candidate { actions += cluster.tick("n1") }
        let saved = try #require(actions.firstIndex { $0.savedHardState == HardState(term: 1, votedFor: "n1") })
        let requests = actions.indices.filter { actions[$0].message?.requestVote != nil }
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { saved < $0 })
    }

    @Test func higherTermIsPersistedBeforeDenyingAVote() throws {
        // n2's log is ahead, so it denies; the newer term it adopts is on disk before the answer.
        let cluster = TestCluster(states: ["n2": state(voters: ["n1", "n2", "n3"], term: 1, log: [1, 1])])
        let actions = cluster.step(.requestVote(from: "n1", to: "n2", term: 2, lastIndex: 0, lastTerm: 0))
        let saved = try #require(actions.firstIndex { $0.savedHardState?.term == 2 })
        let denied = try #require(actions.firstIndex { $0.message?.voteResponse?.granted == false })
        #expect(saved < denied)
        #expect(actions[denied].message?.term == 2)
    }

    @Test func restartedVoterDoesNotVoteTwiceInOneTerm() {
        // goraft kept the vote in memory only; here it is on disk.
        let cluster = TestCluster(settings: .test(preVote: false))
        cluster.step(.requestVote(from: "n1", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        cluster.restart("n2")
        #expect(cluster["n2"].votedFor == "n1")
        let actions = cluster.step(.requestVote(from: "n3", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        #expect(actions.messages.map(\.voteResponse?.granted) == [false])
    }

    // MARK: §5.4.1 the up-to-date rule

    /// n2 holds 1@1 2@1 3@2 in term 2 and answers a RequestVote for term 3 from n1.
    private func vote(lastIndex: LogIndex, lastTerm: Term, mutations: Set<Settings.Mutation> = []) -> Bool? {
        let cluster = TestCluster(
            settings: .test(preVote: false) { $0.mutations = mutations },
            states: ["n2": state(voters: ["n1", "n2", "n3"], term: 2, log: [1, 1, 2])])
        let actions = cluster.step(.requestVote(from: "n1", to: "n2", term: 3, lastIndex: lastIndex, lastTerm: lastTerm))
        return actions.messages.compactMap(\.voteResponse?.granted).first
    }

    @Test func upToDateRuleDeniesLowerLastTermEvenWithLongerLog() {
        #expect(vote(lastIndex: 10, lastTerm: 1) == false)
    }

    @Test func upToDateRuleGrantsHigherLastTermWithShorterLog() {
        // goraft compared index and term separately and denied this candidate.
        #expect(vote(lastIndex: 2, lastTerm: 3) == true)
    }

    @Test func goraftVoteMutationDeniesHigherLastTermWithShorterLog() {
        // The test-only switch restores goraft's rule: the same request is denied.
        #expect(vote(lastIndex: 2, lastTerm: 3, mutations: [.goraftVote]) == false)
    }

    @Test func preVoteDeniedForCandidateWhoseLogIsBehind() {
        let cluster = TestCluster(states: ["n2": state(voters: ["n1", "n2", "n3"], term: 2, log: [1, 1, 2])])
        let actions = cluster.step(.requestVote(from: "n1", to: "n2", term: 3, lastIndex: 5, lastTerm: 1, preVote: true))
        #expect(actions.messages.compactMap(\.voteResponse?.granted) == [false])
        #expect(cluster["n2"].term == 2)
    }

    @Test func upToDateRuleDeniesSameLastTermShorterLog() {
        #expect(vote(lastIndex: 2, lastTerm: 2) == false)
    }

    @Test func upToDateRuleGrantsSameLastTermSameLength() {
        #expect(vote(lastIndex: 3, lastTerm: 2) == true)
    }

    // MARK: goraft's vote tests

    @Test func voteDeniedForStaleTerm() {
        let cluster = TestCluster(states: ["n2": state(voters: ["n1", "n2", "n3"], term: 3, log: [])])
        let actions = cluster.step(.requestVote(from: "n1", to: "n2", term: 2, lastIndex: 0, lastTerm: 0))
        let answers = actions.messages.filter { $0.voteResponse != nil }
        #expect(answers.map(\.voteResponse?.granted) == [false])
        #expect(answers.map(\.term) == [3])
        #expect(cluster["n2"].term == 3)
        #expect(cluster["n2"].votedFor == nil)
    }

    @Test func voteDeniedForSecondCandidateInSameTerm() {
        let cluster = TestCluster(settings: .test(preVote: false))
        cluster.step(.requestVote(from: "n1", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        let actions = cluster.step(.requestVote(from: "n3", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        #expect(actions.messages.map(\.voteResponse?.granted) == [false])
        #expect(cluster["n2"].votedFor == "n1")
    }

    @Test func voteGrantedAgainToSameCandidateInSameTerm() {
        // A duplicated or retried RequestVote gets the same answer.
        let cluster = TestCluster(settings: .test(preVote: false))
        cluster.step(.requestVote(from: "n1", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        let actions = cluster.step(.requestVote(from: "n1", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        #expect(actions.messages.map(\.voteResponse?.granted) == [true])
    }

    @Test func voteGrantedInLaterTermAfterVotingInOlderTerm() {
        let cluster = TestCluster(settings: .test(preVote: false))
        cluster.step(.requestVote(from: "n1", to: "n2", term: 1, lastIndex: 0, lastTerm: 0))
        let actions = cluster.step(.requestVote(from: "n3", to: "n2", term: 2, lastIndex: 0, lastTerm: 0))
        #expect(actions.messages.map(\.voteResponse?.granted) == [true])
        #expect(cluster["n2"].hardState == HardState(term: 2, votedFor: "n3"))
    }

    // MARK: Dissertation 4.2.3 and CheckQuorum

    @Test func nodeThatHeardFromLeaderIgnoresRequestVoteWithHigherTerm() {
        let cluster = TestCluster()
        cluster.elect("n1")
        let before = cluster["n2"].hardState
        let n2 = cluster["n2"].log
        let actions = cluster.step(.requestVote(from: "n3", to: "n2", term: 5, lastIndex: n2.lastIndex, lastTerm: n2.lastTerm))
        #expect(cluster["n2"].hardState == before)
        #expect(cluster["n2"].leader == "n1")
        #expect(actions.messages.isEmpty)
        #expect(!actions.contains { $0.savedHardState != nil })
    }

    @Test func nodeThatHasNotHeardFromLeaderForElectionTimeoutConsidersRequestVote() {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.tick("n2", times: Settings().electionTicks)
        let n2 = cluster["n2"].log
        let actions = cluster.step(.requestVote(from: "n3", to: "n2", term: 5, lastIndex: n2.lastIndex, lastTerm: n2.lastTerm))
        #expect(cluster["n2"].hardState == HardState(term: 5, votedFor: "n3"))
        #expect(actions.messages.map(\.voteResponse?.granted) == [true])
    }

    @Test func leaderCutOffFromMajorityStepsDownWithinElectionTimeout() {
        let cluster = TestCluster(settings: .test(checkQuorum: true))
        cluster.elect("n1")
        cluster.heartbeat("n1", rounds: 5)
        cluster.isolate("n1")
        var ticks = 0
        while cluster["n1"].role == .leader && ticks < 10 * Settings().electionTicks {
            cluster.tick("n1")
            ticks += 1
        }
        #expect(cluster["n1"].role == .follower)
        #expect(cluster["n1"].leader == nil)
        // At most the longest randomized election timeout, 2T.
        #expect(ticks <= 2 * Settings().electionTicks)
    }

    @Test func leaderHearingFromMajorityKeepsLeading() {
        let cluster = TestCluster(settings: .test(checkQuorum: true))
        cluster.elect("n1")
        cluster.isolate("n3")
        let term = cluster["n1"].term
        cluster.tickAll(times: 10 * Settings().electionTicks)
        #expect(cluster["n1"].role == .leader)
        #expect(cluster["n1"].term == term)
    }

    @Test func withoutCheckQuorumCutOffLeaderKeepsLeading() {
        let cluster = TestCluster(settings: .test(checkQuorum: false))
        cluster.elect("n1")
        cluster.isolate("n1")
        cluster.tick("n1", times: 10 * Settings().electionTicks)
        #expect(cluster["n1"].role == .leader)
    }
}
