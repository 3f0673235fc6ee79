import Foundation
import Raft
import RaftNodeMachine
import RaftNodeWire
import RaftStorage

/// The verdict of one check: whether it held, and for each violation one line naming the
/// evidence (nodes, term, index, file and byte offset or line). `notes` say what was checked
/// and what could not be (a lagging node, a node whose files are damaged...).
public struct CheckResult: Sendable, Hashable {
    /// `steps` (the harness's), `files`, `one-leader-per-term`, `log-matching`,
    /// `committed-entries`, `acknowledged-writes`, `converged-state`, `linearizable`,
    /// `snapshot-states`, `applied-in-order` or `configurations`.
    public var name: String
    /// The check held. False both when it failed and when it could not finish.
    public var passed: Bool
    /// The check could not finish within its bound: neither a pass nor a failure (the run's
    /// verdict is then `unknown`, unless another check failed).
    public var unknown: Bool
    /// One line a violation (empty when passed).
    public var evidence: [String]
    public var notes: [String]
    /// How much it verified, e.g. `terms` 4, `indices` 312: a pass over nothing shows.
    public var verified: [Count]
    /// When the first violation happened (Unix microseconds, on the run's clock), when the
    /// files say.
    public var firstViolationAt: Int64?

    public struct Count: Sendable, Hashable {
        public var what: String
        public var count: Int
        public init(_ what: String, _ count: Int) {
            self.what = what
            self.count = count
        }
    }

    public init(
        name: String, passed: Bool, unknown: Bool = false, evidence: [String] = [], notes: [String] = [], verified: [Count] = [],
        firstViolationAt: Int64? = nil
    ) {
        self.name = name
        self.passed = passed && !unknown
        self.unknown = unknown
        self.evidence = evidence
        self.notes = notes
        self.verified = verified
        self.firstViolationAt = firstViolationAt
    }

    /// `pass`, `fail` or `unknown`.
    public var status: String { passed ? "pass" : unknown ? "unknown" : "fail" }

    /// Nothing was verified: every count is zero (a check that reports no counts is not
    /// judged so).
    public var verifiedNothing: Bool { !verified.isEmpty && verified.allSatisfy { $0.count == 0 } }

    /// `{"name":..,"passed":..,"status":..,"verified":{..},"at":..,"evidence":[..],"notes":[..]}`,
    /// for report.json (`at`, the first violation's time, only when known).
    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("name", .string(name)), ("passed", .bool(passed)), ("status", .string(status))]
        fields.append(("verified", .object(verified.map { ($0.what, .int(Int64($0.count))) })))
        if let t = firstViolationAt { fields.append(("at", .string(Timestamp.rfc3339(unixMicros: t)))) }
        fields += [("evidence", .strings(evidence)), ("notes", .strings(notes))]
        return .object(fields)
    }
}

/// The checker of SPEC section 3. It reads only the files of a run directory:
///
/// ```
/// harness.log      only its `converged` lines (below)
/// history.jsonl    "invoke" lines (op, client, key, value, ts), "ok" lines of puts (index,
///                  term; key and value from the line or from the client's invoke before it),
///                  "ok" lines of gets (the value read), "unknown" lines (check 6)
/// nodes/NODE/      meta, log/base, log/*.seg, snapshot/*.ss (the newest), events.jsonl
/// ```
///
/// `harness.log` line of a finished `await converged`, which the harness writes (after any
/// time stamp; words separated by single spaces):
///
/// ```
/// converged applied=INDEX digest=HEX16 nodes=NODE,NODE,...
/// ```
///
/// What a node's files say, as used below:
/// - its log: the entries of its segments after the compaction point of `log/base`; a torn
///   last record of the newest segment (a crash mid-append, never acknowledged) is ignored;
/// - its snapshot: the newest `snapshot/*.ss`, header and state (a `KeyValueStore`);
/// - its commit index C: the highest `index` of its `commit` events and `commitIndex` of its
///   `start` events since its data was last wiped (a `start` with lastIndex, commitIndex and
///   snapshotIndex all 0 after earlier events). The entries of its log at indices ≤ C, its
///   snapshot's (index, term) and its base's (prevIndex, prevTerm) are *committed*;
/// - its applied index A = max(snapshot index, min(C, last log index)), and its state at any
///   index X with snapshot index ≤ X ≤ last log index: the snapshot's state, then the
///   commands of its log through X replayed with `Command.apply` (digest as `digestHex`).
///
/// The checks (each failure line names nodes, terms, indices and files):
/// 1. `one-leader-per-term` (events): no two nodes have a `role` event with role `leader`
///    and the same `term`.
/// 2. `log-matching` (logs, snapshots, bases): no two nodes hold entries with the same index
///    and term but a different type or payload (StableHash of the payload); and for two
///    nodes that agree on the term at some index h, no index below h where both know a term
///    has different terms (the Log Matching Property).
/// 3. `committed-entries` (logs, snapshots, events):
///    a. no two nodes' committed entries (or snapshot/base points) at one index differ in
///       term or payload;
///    b. a node that was leader in term T (since its last wipe) holds every entry committed
///       before T: with K the highest commit index any node reported in an event of a term
///       below T, its files reach K (log end or snapshot), and each of its log entries at an
///       index ≤ K that some node holds as committed is that committed entry;
///    c. no `truncate` event (a conflicting suffix removed) removes an index at or below the
///       commit index the same node reported earlier in its events (since its last wipe);
///    d. no node installs a snapshot at an index below the commit index it reported earlier
///       (a stale install: its state would go back), and every `compact` (entries dropped
///       because a snapshot covers them) is covered by a snapshot the node held by then
///       (its `start` snapshotIndex, a `snapshot-taken` or a `snapshot-installed`).
/// 4. `acknowledged-writes` (history, logs, snapshots), for each acknowledged put (key,
///    value, index i, term t):
///    a. every node whose log holds index i with term t holds exactly that put there; a node
///       whose committed entry (or snapshot/base point) at i has another term fails;
///    b. some node's files reach index i;
///    c. for each member of the newest committed configuration (every node when none is
///       known) whose applied index A ≥ i, where this put is the last acknowledged write to
///       its key at or before A: the member's value for the key at A comes from this put or
///       from a later write. When the value's entry is in the replayed log, its index must
///       be ≥ i. When it comes from the snapshot: it must be this put's value, or the value
///       of the last committed write to the key that some node's log shows between i and
///       the snapshot index, or, when not every index there is known, a value some put to
///       the key was invoked with and that no acknowledged put before i wrote alone. A key
///       that is absent fails unless a committed delete of it is known after i.
/// 5. `converged-state` (harness.log, logs, snapshots): for each `converged` line, each
///    listed node whose files hold its state at that applied index (snapshot at or before
///    it, log through it) has the line's digest there; and nodes whose snapshots, or whose
///    applied indices A, are at one index have one state digest there.
///
/// `files`: a damaged or unreadable file (a bad record, checksum, header, JSON line, or a
/// log compacted past its snapshot) fails with its file and byte offset; the other checks go
/// on with what could be read, and skip the states of a node whose storage is damaged.
public enum RunChecker {
    /// The results, in the order above (`files` first). The run passes when all passed.
    /// `linearizabilityBudget`: the steps check 6 may search each key for (then `unknown`).
    public static func check(runDirectory: String, linearizabilityBudget: Int = 5_000_000) -> [CheckResult] {
        var checker = Checker(RunFiles(directory: runDirectory))
        checker.linearizabilityBudget = linearizabilityBudget
        return checker.checkAll()
    }
}

private let maxEvidence = 40

struct Checker {
    let run: RunFiles
    var nodes: [NodeFiles] { run.nodes }
    /// The committed entries every file holds (checks 7-9).
    let committedLog: CommittedLog
    var linearizabilityBudget = 5_000_000
    /// States computed so far, by node and index.
    private var states: [String: [LogIndex: ReplayedState]] = [:]

    init(_ run: RunFiles) {
        self.run = run
        committedLog = CommittedLog(run.nodes)
    }

    mutating func checkAll() -> [CheckResult] {
        [
            files(), oneLeaderPerTerm(), logMatching(), committedEntries(), acknowledgedWrites(), convergedState(), linearizable(),
            snapshotStates(), appliedInOrder(), configurations(),
        ]
    }

    // MARK: linearizable (check 6)

    /// Every put and get of history.jsonl, each key a register, linearizable; an unknown
    /// operation may take effect at any time after its invocation, or never. A search past
    /// its budget is no pass: it fails the check, saying so.
    func linearizable() -> CheckResult {
        let report = Linearizability.check(byKey: run.registers, budget: linearizabilityBudget)
        var evidence: [String] = []
        if let v = report.violation {
            evidence.append(
                "key \(v.key): these \(v.fragment.count) operations cannot be linearized"
                    + (v.minimal ? " (without any one of its gets, or a put none of them reads, they can)" : " (not shrunk further: out of budget)")
                    + ": " + v.fragment.map(\.description).joined(separator: "; "))
        }
        for key in report.unknownKeys {
            evidence.append("key \(key): unknown, the search ran out of its budget (neither a pass nor a failure)")
        }
        let gets = run.registers.values.reduce(0) { $0 + $1.filter { if case .get = $0.kind { true } else { false } }.count }
        let unknown = run.registers.values.reduce(0) { $0 + $1.filter { $0.completed == nil }.count }
        var notes = ["\(report.operations) operations on \(report.keys) keys (\(gets) gets, \(unknown) unknown) checked as registers"]
        if run.untimedOperations > 0 { notes.append("\(run.untimedOperations) operations without a time stamp left out") }
        // Past its budget with no violation found: neither a pass nor a failure.
        let undecided = report.violation == nil && !report.unknownKeys.isEmpty
        // The fragment is wrong once its last operation has answered.
        let at = report.violation.flatMap { v in v.fragment.map { $0.completed ?? $0.invoked }.max() }
        return Self.result(
            "linearizable", evidence, notes, unknown: undecided,
            verified: [.init("operations", report.operations), .init("keys", report.keys)], at: at)
    }

    static func result(
        _ name: String, _ evidence: [String], _ notes: [String], unknown: Bool = false, verified: [CheckResult.Count] = [], at: Int64? = nil
    ) -> CheckResult {
        var ev = evidence
        if ev.count > maxEvidence {
            let more = ev.count - maxEvidence
            ev.removeLast(more)
            ev.append("... and \(more) more")
        }
        return CheckResult(
            name: name, passed: evidence.isEmpty, unknown: unknown && !evidence.isEmpty, evidence: ev, notes: notes, verified: verified,
            firstViolationAt: evidence.isEmpty ? nil : at)
    }

    func events(_ n: NodeFiles, _ e: LoggedEvent) -> String { "\(n.eventsFile) line \(e.line)" }

    // MARK: files

    func files() -> CheckResult {
        var evidence = run.problems.map(\.description)
        var notes: [String] = []
        for n in nodes {
            evidence += n.problems.map(\.description)
            notes += n.notes
            if n.incarnationStart > 0 && n.incarnationStart < n.events.count {
                notes.append("\(n.name) was wiped and started afresh (\(n.eventsFile) line \(n.events[n.incarnationStart].line)); earlier events count only for leaders and commits in other nodes' checks")
            }
        }
        notes.append("\(nodes.count) nodes: " + nodes.map { "\($0.name) log \($0.prevIndex + 1)...\($0.lastIndex) snapshot \($0.snapshotIndex) commit \($0.commitIndex.index)" }.joined(separator: "; "))
        let archived = nodes.reduce(0) { $0 + $1.archivedEntries.count }
        if archived > 0 { notes.append("\(archived) entries read from archives and before compaction points") }
        return Self.result(
            "files", evidence, notes,
            verified: [
                .init("nodes", nodes.count), .init("entries", nodes.reduce(0) { $0 + $1.entries.count } + archived),
                .init("snapshots", nodes.reduce(0) { $0 + $1.allSnapshots.count }), .init("events", nodes.reduce(0) { $0 + $1.events.count }),
            ])
    }

    // MARK: 1

    func oneLeaderPerTerm() -> CheckResult {
        var leaders: [Term: [(String, String)]] = [:]
        for n in nodes {
            for e in n.events where e.isLeader {
                if !(leaders[e.term]?.contains { $0.0 == n.name } ?? false) {
                    leaders[e.term, default: []].append((n.name, events(n, e)))
                }
            }
        }
        var evidence: [String] = []
        for term in leaders.keys.sorted() where leaders[term]!.count > 1 {
            let who = leaders[term]!
            evidence.append("term \(term) had \(who.count) leaders: " + who.map { "\($0.0) (\($0.1))" }.joined(separator: ", "))
        }
        return Self.result("one-leader-per-term", evidence, ["\(leaders.count) terms with a leader"], verified: [.init("terms", leaders.count)])
    }

    // MARK: 2

    /// What a node says of one index: a term, and a payload digest when it is a log entry.
    struct Point {
        var node: String
        var term: Term
        var type: EntryType?
        var digest: UInt64?
        var place: String
        var describe: String {
            if let type, let digest { return "\(node) has term \(term) \(type) \(digest.hex16) (\(place))" }
            return "\(node) has term \(term) (\(place))"
        }
    }

    func points(_ n: NodeFiles, committedOnly: Bool) -> [LogIndex: Point] {
        var out: [LogIndex: Point] = [:]
        if n.prevIndex > 0 { out[n.prevIndex] = Point(node: n.name, term: n.prevTerm, place: "\(n.dir)/log/base") }
        if let s = n.snapshot, s.index > 0 { out[s.index] = Point(node: n.name, term: s.term, place: s.file) }
        let c = n.commitIndex.index
        for e in n.entries where !committedOnly || e.index <= c {
            out[e.index] = Point(node: n.name, term: e.term, type: e.entry.type, digest: e.digest, place: e.place)
        }
        return out
    }

    func logMatching() -> CheckResult {
        var evidence: [String] = []
        var compared = 0
        let all = nodes.map { points($0, committedOnly: false) }
        for a in 0..<nodes.count {
            for b in (a + 1)..<max(a + 1, nodes.count) {
                let pa = all[a], pb = all[b]
                let common = Set(pa.keys).intersection(pb.keys).sorted(by: >)
                compared += common.count
                var agreedAt: (LogIndex, Term)?
                var reported = 0
                for i in common {
                    let x = pa[i]!, y = pb[i]!
                    if x.term == y.term {
                        if let dx = x.digest, let dy = y.digest, dx != dy || x.type != y.type {
                            evidence.append("index \(i) term \(x.term) differs: \(x.describe); \(y.describe)")
                        }
                        if agreedAt == nil { agreedAt = (i, x.term) }
                    } else if let (h, t) = agreedAt, reported < 3 {
                        reported += 1
                        evidence.append("\(x.node) and \(y.node) agree at index \(h) term \(t) but differ before it, at index \(i): \(x.describe); \(y.describe)")
                    }
                }
            }
        }
        return Self.result("log-matching", evidence, ["\(nodes.count) logs compared pairwise"], verified: [.init("indices", compared)])
    }

    // MARK: 3

    func committedEntries() -> CheckResult {
        var evidence: [String] = []
        var notes: [String] = []
        // a. committed points agree.
        var committed: [LogIndex: Point] = [:]
        for n in nodes {
            let c = n.commitIndex
            for (i, p) in points(n, committedOnly: true) {
                guard let q = committed[i] else {
                    committed[i] = p
                    continue
                }
                let payloadDiffers = p.digest != nil && q.digest != nil && (p.digest != q.digest || p.type != q.type)
                if p.term != q.term || payloadDiffers {
                    let why = c.line.map { " (\(n.name) reported commit index \(c.index) at \(n.eventsFile) line \($0))" } ?? ""
                    evidence.append("committed index \(i) differs between nodes: \(q.describe); \(p.describe)\(why)")
                }
                if q.digest == nil && p.digest != nil { committed[i] = p }
            }
            // What its archive holds was committed too.
            for e in n.archivedEntries {
                let p = Point(node: n.name, term: e.term, type: e.entry.type, digest: e.digest, place: e.place)
                guard let q = committed[e.index] else {
                    committed[e.index] = p
                    continue
                }
                if p.term != q.term || (q.digest != nil && (p.digest != q.digest || p.type != q.type)) {
                    evidence.append("committed index \(e.index) differs between nodes: \(q.describe); \(p.describe) (compacted, so committed)")
                }
                if q.digest == nil { committed[e.index] = p }
            }
        }
        // b. leaders hold what was committed before their term.
        var commitsByTerm: [(term: Term, index: LogIndex, node: String, place: String)] = []
        for n in nodes {
            for e in n.events {
                if let c = e.reportedCommit, c > 0 { commitsByTerm.append((e.term, c, n.name, events(n, e))) }
            }
        }
        var leaderTerms = 0
        for n in nodes {
            var seen = Set<Term>()
            for e in n.events[n.incarnationStart...] where e.isLeader && seen.insert(e.term).inserted {
                leaderTerms += 1
                guard let k = commitsByTerm.filter({ $0.term < e.term }).max(by: { $0.index < $1.index }) else { continue }
                let leader = "\(n.name), leader in term \(e.term) (\(events(n, e)))"
                if n.reach < k.index {
                    evidence.append("\(leader) lacks committed entries: its files end at index \(n.reach) (log to \(n.lastIndex), snapshot \(n.snapshotIndex)), but \(k.node) reported commit index \(k.index) in term \(k.term) (\(k.place))")
                    continue
                }
                for i in committed.keys.sorted() where i <= k.index {
                    guard let mine = n.entry(at: i), let c = committed[i] else { continue }
                    if mine.term != c.term || (c.digest != nil && (mine.digest != c.digest || mine.entry.type != c.type)) {
                        evidence.append("\(leader) lacks the entry committed at index \(i) by term \(k.term) (\(k.place)): it has term \(mine.term) \(mine.entry.type) \(mine.digest.hex16) (\(mine.place)); committed: \(c.describe)")
                    }
                }
            }
        }
        // c, d. no removal of what the node reported committed; compactions covered.
        var truncations = 0, compactions = 0, installs = 0
        for n in nodes {
            var reported: (LogIndex, Int) = (0, 0)
            var covered: LogIndex = 0
            for e in n.events {
                if e.isStartOfWipedData {
                    // Every wipe starts afresh, not only the last (n.incarnationStart).
                    reported = (0, 0)
                    covered = 0
                }
                switch e.event {
                case let .commit(c):
                    if c > reported.0 { reported = (c, e.line) }
                case let .start(_, c, snapshotIndex):
                    if c > reported.0 { reported = (c, e.line) }
                    covered = max(covered, snapshotIndex)
                case let .snapshotTaken(index, _, _, _):
                    covered = max(covered, index)
                case let .snapshotInstalled(_, i, _, _, _):
                    installs += 1
                    if i < reported.0 {
                        evidence.append("\(n.name) installed a snapshot at index \(i) (\(events(n, e)), term \(e.term)) below the commit index \(reported.0) it had reported (\(n.eventsFile) line \(reported.1))")
                    }
                    covered = max(covered, i)
                case let .truncate(from):
                    truncations += 1
                    if from <= reported.0 {
                        evidence.append("\(n.name) removed its entries from index \(from) on (\(events(n, e)), term \(e.term)) after reporting commit index \(reported.0) (\(n.eventsFile) line \(reported.1))")
                    }
                case let .compact(through):
                    compactions += 1
                    if through > covered {
                        evidence.append("\(n.name) dropped its entries through index \(through) (\(events(n, e)), term \(e.term)) with no snapshot covering them (its newest at index \(covered))")
                    }
                default:
                    break
                }
            }
        }
        notes.append("\(committed.count) committed indices known from the files; \(leaderTerms) leader terms checked for completeness; \(truncations) truncations, \(compactions) compactions and \(installs) installs checked against the commit indices reported")
        return Self.result(
            "committed-entries", evidence, notes,
            verified: [.init("indices", committed.count), .init("leader terms", leaderTerms), .init("truncations", truncations), .init("compactions", compactions)])
    }

    // MARK: 4

    /// A node's state at an index, with the index of the entry that wrote each key when it
    /// is in the replayed log (nil: from the snapshot).
    struct ReplayedState {
        var store: KeyValueStore
        var origin: [String: LogIndex]
    }

    /// The state of `n` at `index`, replayed from its files, or nil when they do not hold it.
    mutating func state(_ n: NodeFiles, at index: LogIndex) -> ReplayedState? {
        if let s = states[n.name]?[index] { return s }
        guard !n.storageDamaged else { return nil }
        let base: KeyValueStore
        let from: LogIndex
        if let s = n.snapshot {
            guard let st = s.state, s.index <= index else { return nil }
            base = st
            from = s.index
        } else {
            guard n.prevIndex == 0 else { return nil }
            base = KeyValueStore()
            from = 0
        }
        guard index <= max(from, n.lastIndex), from >= n.prevIndex else { return nil }
        var r = ReplayedState(store: base, origin: [:])
        var i = from + 1
        while i <= index {
            guard let e = n.entry(at: i) else { return nil }
            if e.entry.type == .command, let command = try? Command(decoding: e.entry.payload) {
                command.apply(to: &r.store)
                switch command {
                case let .put(key, _), let .delete(key): r.origin[key] = i
                case .get: break
                }
            }
            i += 1
        }
        states[n.name, default: [:]][index] = r
        return r
    }

    /// The newest configuration known committed: a committed config entry or a snapshot's.
    func finalConfiguration() -> (Configuration, String)? {
        var best: (LogIndex, Configuration, String)?
        for n in nodes {
            if let s = n.snapshot, best == nil || s.index > best!.0 { best = (s.index, s.configuration, s.file) }
            let c = n.commitIndex.index
            for e in n.entries where e.entry.type == .config && e.index <= c {
                if best == nil || e.index > best!.0, let conf = e.entry.configuration { best = (e.index, conf, e.place) }
            }
        }
        return best.map { ($0.1, $0.2) }
    }

    func committedWrites(of key: String) -> (writes: [LogIndex: String?], known: Set<LogIndex>) {
        var writes: [LogIndex: String?] = [:]
        var known = Set<LogIndex>()
        for n in nodes {
            let c = n.commitIndex.index
            for e in n.entries where e.index <= c {
                known.insert(e.index)
                guard e.entry.type == .command, let command = try? Command(decoding: e.entry.payload) else { continue }
                switch command {
                case let .put(k, v) where k == key: writes[e.index] = .some(v)
                case let .delete(k) where k == key: writes[e.index] = .some(nil)
                default: break
                }
            }
        }
        return (writes, known)
    }

    mutating func acknowledgedWrites() -> CheckResult {
        var evidence: [String] = []
        var notes: [String] = []
        let acks = run.acknowledged
        func ackText(_ w: AcknowledgedWrite) -> String {
            "acknowledged put \(show(w.key))=\(show(w.value)) at index \(w.index) term \(w.term) (history.jsonl line \(w.line))"
        }
        // a, b.
        for w in acks {
            for n in nodes {
                if let e = n.entry(at: w.index) {
                    if e.term == w.term {
                        if e.entry.type != .command || (try? Command(decoding: e.entry.payload)) != .put(key: w.key, value: w.value) {
                            evidence.append("\(ackText(w)): \(n.name)'s entry at that index and term is not that put but \(describe(e.entry)) (\(e.place))")
                        }
                    } else if w.index <= n.commitIndex.index {
                        evidence.append("\(ackText(w)): \(n.name)'s committed entry at index \(w.index) has term \(e.term) (\(e.place); \(n.name) reported commit index \(n.commitIndex.index))")
                    }
                } else if let t = n.term(at: w.index), t != w.term {
                    evidence.append("\(ackText(w)): \(n.name)'s snapshot or compaction point at index \(w.index) has term \(t)")
                }
            }
            if !nodes.isEmpty && !nodes.contains(where: { $0.reach >= w.index }) {
                evidence.append("\(ackText(w)) is lost: no node's files reach index \(w.index) (" + nodes.map { "\($0.name) to \($0.reach)" }.joined(separator: ", ") + ")")
            }
        }
        // c.
        let config = finalConfiguration()
        let members = config.map { Set($0.0.members) } ?? Set(nodes.map(\.name))
        if let (c, place) = config { notes.append("members: \(c) (\(place))") }
        var byKey: [String: [AcknowledgedWrite]] = [:]
        for w in acks { byKey[w.key, default: []].append(w) }
        var judged = 0
        for n in nodes where members.contains(n.name) {
            let applied = n.appliedIndex
            guard !n.storageDamaged, let st = state(n, at: applied) else {
                notes.append("\(n.name): state not known from its files; not judged")
                continue
            }
            for (key, writes) in byKey {
                guard let last = writes.filter({ $0.index <= applied }).max(by: { $0.index < $1.index }) else { continue }
                judged += 1
                let value = st.store[key]
                let where_ = "\(n.name) at applied index \(applied) (snapshot \(n.snapshot?.file ?? "none"), log to \(applied))"
                if let o = st.origin[key] {
                    if o < last.index {
                        evidence.append("\(ackText(last)) is lost: \(where_) holds \(show(key))=\(value.map(show) ?? "absent") from the earlier index \(o)")
                    }
                    continue
                }
                if value == last.value { continue }
                // From the snapshot, and not this put's value: a later write must explain it.
                let snap = n.snapshotIndex
                let (known, indices) = committedWrites(of: key)
                let between = known.filter { $0.key > last.index && $0.key <= snap }
                let complete = last.index >= snap || (last.index + 1...snap).allSatisfy { indices.contains($0) }
                let shown = value.map(show) ?? "absent"
                if let latest = between.max(by: { $0.key < $1.key }) {
                    if latest.value == value { continue }
                    if complete {
                        evidence.append("\(ackText(last)): \(where_) holds \(show(key))=\(shown), but the last committed write to it before the snapshot is at index \(latest.key) (\(latest.value.map { show($0) } ?? "delete"))")
                        continue
                    }
                } else if complete {
                    let why = writes.last(where: { $0.index < last.index && $0.value == value }).map {
                        "the value of the earlier put at index \($0.index) (history.jsonl line \($0.line))"
                    } ?? "and the logs show no write to it between index \(last.index) and the snapshot at \(snap)"
                    evidence.append("\(ackText(last)) is lost: \(where_) holds \(show(key))=\(shown), \(why)")
                    continue
                }
                // Some indices between are known nowhere: any put of this value to the key
                // that was invoked and is not an acknowledged put before this one may be it.
                guard let value else {
                    evidence.append("\(ackText(last)) is lost: \(where_) has no value for \(show(key)) and no committed delete of it is known")
                    continue
                }
                let earlier = writes.filter { $0.index < last.index && $0.value == value }
                if run.invocations[key]?[value, default: 0] ?? 0 > earlier.count { continue }
                if let e = earlier.last {
                    evidence.append("\(ackText(last)) is lost: \(where_) holds \(show(key))=\(show(value)), the value of the earlier put at index \(e.index) (history.jsonl line \(e.line))")
                } else {
                    evidence.append("\(ackText(last)) is lost: \(where_) holds \(show(key))=\(show(value)), which no invoked put wrote")
                }
            }
        }
        notes.append("\(acks.count) acknowledged puts; \(judged) (member, key) final values judged")
        return Self.result("acknowledged-writes", evidence, notes, verified: [.init("operations", acks.count), .init("values", judged)])
    }

    // MARK: 5

    mutating func convergedState() -> CheckResult {
        var evidence: [String] = []
        var notes: [String] = []
        for r in run.converged {
            var got: [(String, String)] = []
            for name in r.nodes {
                guard let n = nodes.first(where: { $0.name == name }) else {
                    notes.append("harness.log line \(r.line): \(name) has no data dir")
                    continue
                }
                guard let s = state(n, at: r.applied) else {
                    notes.append("harness.log line \(r.line): \(name)'s files no longer hold its state at index \(r.applied) (snapshot \(n.snapshotIndex), log \(n.prevIndex + 1)...\(n.lastIndex))")
                    continue
                }
                got.append((name, s.store.digestHex))
            }
            let wrong = got.filter { $0.1 != r.digest }
            if !wrong.isEmpty {
                evidence.append("after await converged (harness.log line \(r.line)) at applied index \(r.applied) digest \(r.digest): " + got.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + " (from each node's snapshot and log)")
            }
        }
        // Equal index, equal state: snapshots, and applied indices.
        var at: [LogIndex: [(String, String, String)]] = [:]
        for n in nodes where !n.storageDamaged {
            if let s = n.snapshot, let st = s.state { at[s.index, default: []].append((n.name, st.digestHex, s.file)) }
            let a = n.appliedIndex
            if a != n.snapshotIndex, let st = state(n, at: a) {
                at[a, default: []].append((n.name, st.store.digestHex, "\(n.dir) log to \(a)"))
            }
        }
        for i in at.keys.sorted() {
            let group = at[i]!
            if Set(group.map(\.1)).count > 1 {
                evidence.append("state digests differ at applied index \(i): " + group.map { "\($0.0) \($0.1) (\($0.2))" }.joined(separator: ", "))
            }
        }
        notes.append("\(run.converged.count) converged lines in harness.log")
        return Self.result(
            "converged-state", evidence, notes, verified: [.init("converged lines", run.converged.count), .init("indices", at.count)])
    }
}

/// A key or value for a message: quoted, and cut to 40 characters.
func show(_ s: String) -> String {
    let cut = s.count > 40 ? String(s.prefix(40)) + "…(\(s.utf8.count) bytes)" : s
    return "\"" + cut + "\""
}

func describe(_ e: Entry) -> String {
    switch e.type {
    case .noop: return "a noop"
    case .config: return "a configuration \(e.configuration.map { "\($0)" } ?? "(unreadable)")"
    case .command:
        switch try? Command(decoding: e.payload) {
        case let .put(k, v)?: return "put \(show(k))=\(show(v))"
        case let .delete(k)?: return "delete \(show(k))"
        case let .get(k)?: return "get \(show(k))"
        case nil: return "a command that does not decode (\(e.payload.count) bytes)"
        }
    }
}
