import Raft

/// A broken safety property, with what shows it.
public struct Violation: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case electionSafety = "two leaders in one term"
        case logMatching = "log matching"
        case committedChanged = "committed entry changed"
        case leaderCompleteness = "committed entry missing from a leader"
        case stateMachineSafety = "state machines differ at the same applied index"
        case configurationChanges = "more than one configuration change in flight"
        case lostWrite = "acknowledged write lost"
        case liveness = "no convergence after healing"
        case progressUnderLoad = "snapshots chased under steady writes"
        case shell = "shell contract"
    }

    public var kind: Kind
    public var time: Int
    public var detail: String

    public var description: String { "[t=\(time)ms] \(kind.rawValue): \(detail)" }
}

/// The checks of Raft's safety properties, fed as the simulation runs; each records the
/// first violation it sees.
struct Invariants {
    /// Term -> the node that led in it.
    private var leaders: [Term: NodeID] = [:]
    /// (index, term) -> (payload digest, previous entry's term): that one entry per index and
    /// term exists, and (by induction on the previous term) that logs agreeing at an entry
    /// agree on everything before it.
    private var entries: [EntryKey: EntryFacts] = [:]
    /// Committed index -> (term, payload digest), as first seen committed anywhere.
    private(set) var committed: [LogIndex: EntryFacts] = [:]
    private(set) var maxCommitted: LogIndex = 0
    /// Term -> the highest index a node of that term knew committed. Leader Completeness
    /// binds the leaders of later terms only: a leader elected in an older term (its votes
    /// held back by a pause) may lack what a newer term committed meanwhile.
    private var highestCommittedIn: [Term: LogIndex] = [:]
    /// Applied index -> state digest.
    private var states: [LogIndex: UInt64] = [:]
    private(set) var violations: [Violation] = []

    struct EntryKey: Hashable {
        var index: LogIndex
        var term: Term
    }

    struct EntryFacts: Hashable {
        var term: Term
        var digest: UInt64
        var prevTerm: Term
    }

    static func digest(_ e: Entry) -> UInt64 {
        var h = StableHash()
        h.combine(UInt64(e.type.rawValue))
        h.combine(e.payload)
        return h.finalized
    }

    mutating func fail(_ kind: Violation.Kind, _ time: Int, _ detail: String) {
        if violations.count < 20 { violations.append(Violation(kind: kind, time: time, detail: detail)) }
    }

    /// A node became leader of `term`.
    mutating func leaderElected(_ id: NodeID, term: Term, log: RaftLog, time: Int) {
        if let other = leaders[term], other != id {
            fail(.electionSafety, time, "\(other) and \(id) both led term \(term)")
        }
        leaders[term] = id
        // Leader completeness: every entry committed in an earlier term is in the new leader's log.
        let bound = highestCommittedIn.lazy.filter { $0.key < term }.map(\.value).max() ?? 0
        guard bound > 0 else { return }
        if log.lastIndex < bound {
            fail(.leaderCompleteness, time, "\(id) leads term \(term) with last index \(log.lastIndex) < \(bound), committed in an earlier term")
            return
        }
        var i = max(log.firstIndex, 1)
        while i <= bound {
            if let c = committed[i], let e = log.entry(at: i), e.term != c.term || Self.digest(e) != c.digest {
                fail(.leaderCompleteness, time, "\(id) leads term \(term) with entry \(i)@\(e.term), committed was \(i)@\(c.term)")
                return
            }
            i += 1
        }
    }

    /// A node made entries durable after `prevTerm` (the term of the entry before the first).
    mutating func appended(_ new: [Entry], prevTerm: Term, by id: NodeID, time: Int) {
        var prev = prevTerm
        for e in new {
            let facts = EntryFacts(term: e.term, digest: Self.digest(e), prevTerm: prev)
            let key = EntryKey(index: e.index, term: e.term)
            if let known = entries[key] {
                if known != facts {
                    fail(.logMatching, time, "\(id) holds \(e.index)@\(e.term) (digest \(facts.digest.hex16), previous term \(prev)); another node holds digest \(known.digest.hex16), previous term \(known.prevTerm)")
                }
            } else {
                entries[key] = facts
            }
            prev = e.term
        }
    }

    /// A node's commit index moved to `commitIndex`; its log holds the entries.
    mutating func committed(upTo commitIndex: LogIndex, from: LogIndex, log: RaftLog, by id: NodeID, inTerm term: Term, time: Int) {
        var i = max(from + 1, log.firstIndex)
        while i <= commitIndex {
            guard let e = log.entry(at: i) else { break }
            let facts = EntryFacts(term: e.term, digest: Self.digest(e), prevTerm: 0)
            if let known = committed[i] {
                if known.term != facts.term || known.digest != facts.digest {
                    fail(.committedChanged, time, "\(id) committed \(i)@\(e.term), but \(i)@\(known.term) was committed before")
                }
            } else {
                committed[i] = facts
            }
            i += 1
        }
        maxCommitted = max(maxCommitted, commitIndex)
        highestCommittedIn[term] = max(highestCommittedIn[term] ?? 0, commitIndex)
    }

    /// A node's state machine has applied through `index` with state digest `digest`.
    /// The state digest some node had at applied index `index`, if one was seen.
    func appliedState(at index: LogIndex) -> UInt64? { states[index] }

    mutating func applied(_ index: LogIndex, digest: UInt64, by id: NodeID, time: Int) {
        if let known = states[index] {
            if known != digest {
                fail(.stateMachineSafety, time, "\(id) has digest \(digest.hex16) at applied index \(index), another node \(known.hex16)")
            }
        } else {
            states[index] = digest
        }
    }

    /// A leader's log: at most one configuration entry beyond its commit index, and each
    /// configuration differs from the one before by at most one voter.
    mutating func checkConfigurations(_ core: RaftCore, time: Int) {
        guard core.role == .leader else { return }
        var uncommitted = 0
        var previous: Configuration? = nil
        // A new leader may not know yet how far the cluster committed; what counts is the
        // highest commit anywhere (Leader Completeness puts those entries in its log).
        let committedIndex = max(core.commitIndex, maxCommitted)
        var i = max(core.log.firstIndex, committedIndex + 1)
        while i <= core.log.lastIndex {
            if let e = core.log.entry(at: i), e.type == .config, let c = e.configuration {
                uncommitted += 1
                let before = previous ?? core.configuration(at: i - 1)
                if c.voterDistance(to: before) > 1 {
                    fail(.configurationChanges, time, "\(core.id)'s entry \(i) changes \(c.voterDistance(to: before)) voters at once: \(before) -> \(c)")
                }
                previous = c
            }
            i += 1
        }
        if uncommitted > 1 {
            fail(.configurationChanges, time, "\(core.id) leads term \(core.term) with \(uncommitted) uncommitted configuration entries after \(committedIndex)")
        }
    }
}
