import Raft
import RaftNodeMachine
import RaftNodeWire

/// Checks 7-9 of SPEC section 3: what the files must agree on over the whole history of a
/// run, with the archives (`nodes/NODE/archive/`) that nodes started by the harness keep.
///
/// The committed log they read (`CommittedLog`): each node's log entries at or below the
/// commit index it reported, and every entry of its archive (a compaction drops only a prefix
/// that a snapshot covers, so all of it was committed). Where two files disagree on a
/// committed index, check 3 fails; these checks take the first they find.
///
/// 7. `snapshot-states`: the state of every snapshot file (newest and archived, on every
///    node) equals the state folded from the committed log up to its index, and its (index,
///    term) is the committed entry's there. The fold starts from the empty state at index 0;
///    where an index of the committed log is known nowhere, the fold goes on from the first
///    snapshot after the gap, and the snapshots after it are verified against that one.
/// 8. `applied-in-order` (events): each node's `apply` events go on from where the last left
///    off (from the snapshot index of its `start`, or of a `snapshot-installed`), so that no
///    entry is skipped or applied twice; the (index, term) each names is the committed
///    entry's there.
/// 9. `configurations`: each `config` event of phase `committed` (index, members, learners)
///    is the configuration in force at that index in the committed log (its last
///    configuration entry at or before the index, or the snapshot's), and each snapshot's
///    configuration is the one in force at its index.
struct CommittedLog {
    var entries: [LogIndex: LoggedEntry] = [:]

    init(_ nodes: [NodeFiles]) {
        for n in nodes {
            for e in n.archivedEntries where entries[e.index] == nil { entries[e.index] = e }
            let c = n.commitIndex.index
            for e in n.entries where e.index <= c && entries[e.index] == nil { entries[e.index] = e }
        }
    }

    subscript(index: LogIndex) -> LoggedEntry? { entries[index] }
}

/// A check's evidence, with the earliest time the files give for any of it.
private struct Violations {
    var evidence: [String] = []
    var firstAt: Int64?

    mutating func add(_ text: String, at: Int64?) {
        evidence.append(text)
        if let at { firstAt = min(firstAt ?? at, at) }
    }
}

/// Where what a walk of the committed log knows at an index comes from.
private enum Basis {
    /// The committed log from index 0 on.
    case log
    /// A snapshot after an index that no file holds (its file).
    case snapshot(String)
    /// Nothing yet: an index no file holds, and no snapshot since.
    case none

    var isKnown: Bool { if case .none = self { false } else { true } }
    var relative: String { if case let .snapshot(f) = self { " (folded from \(f), the log before it being known nowhere)" } else { "" } }
}

extension Checker {
    /// Every snapshot file of every node, with its node.
    private func allSnapshots() -> [(node: NodeFiles, info: SnapshotInfo)] {
        nodes.flatMap { n in n.allSnapshots.map { (n, $0) } }.sorted { ($0.info.index, $0.info.file) < ($1.info.index, $1.info.file) }
    }

    /// When `n` took or installed the snapshot at `index`, from its events.
    private func snapshotTime(_ n: NodeFiles, _ index: LogIndex) -> Int64? {
        for e in n.events {
            switch e.event {
            case let .snapshotTaken(i, _, _, _) where i == index: return e.ts
            case let .snapshotInstalled(_, i, _, _, _) where i == index: return e.ts
            default: continue
            }
        }
        return nil
    }

    // MARK: 7

    func snapshotStates() -> CheckResult {
        var found = Violations()
        let snapshots = allSnapshots().filter { $0.info.state != nil }
        var fromLog = 0, fromSnapshot = 0, unverified = 0, termsChecked = 0
        var state = KeyValueStore()
        var basis = Basis.log
        var folded: LogIndex = 0
        var k = 0
        while k < snapshots.count {
            let s = snapshots[k].info.index
            // Fold the committed log up to s.
            while folded < s {
                folded += 1
                guard let e = committedLog[folded] else {
                    basis = .none
                    continue
                }
                if basis.isKnown, e.entry.type == .command, let c = try? Command(decoding: e.entry.payload) { c.apply(to: &state) }
            }
            var group: [(node: NodeFiles, info: SnapshotInfo)] = []
            while k < snapshots.count && snapshots[k].info.index == s {
                group.append(snapshots[k])
                k += 1
            }
            if !basis.isKnown, let first = group.first {
                state = first.info.state!
                basis = .snapshot(first.info.file)
            }
            for (n, info) in group {
                if s > 0, let e = committedLog[s] {
                    termsChecked += 1
                    if e.term != info.term {
                        found.add(
                            "\(n.name)'s snapshot \(info.file) is at index \(s) term \(info.term), but the committed entry at index \(s) has term \(e.term) (\(e.place))",
                            at: snapshotTime(n, s))
                    }
                }
                let mine = info.state!
                if case let .snapshot(f) = basis, f == info.file {
                    unverified += 1
                    continue
                }
                if case .log = basis { fromLog += 1 } else { fromSnapshot += 1 }
                if mine.digest != state.digest || mine.values != state.values {
                    found.add(
                        "\(n.name)'s snapshot \(info.file) at index \(s) holds state \(mine.digestHex) (\(mine.count) keys), but the committed log folds to \(state.digestHex) (\(state.count) keys) there\(basis.relative): \(firstDifference(mine, state))",
                        at: snapshotTime(n, s))
                }
            }
        }
        let gaps = snapshots.isEmpty ? 0 : (1...max(1, snapshots.last!.info.index)).filter { committedLog[$0] == nil }.count
        var notes = [
            "\(snapshots.count) snapshot files (\(nodes.reduce(0) { $0 + $1.archivedSnapshots.count }) archived): \(fromLog) verified against the committed log from index 0, \(fromSnapshot) against an earlier snapshot after indices no file holds, \(unverified) not verifiable (the first after such a gap)"
        ]
        if gaps > 0 { notes.append("\(gaps) indices up to the newest snapshot are held by no node's files (log or archive)") }
        return Self.result(
            "snapshot-states", found.evidence, notes,
            verified: [.init("snapshots", fromLog + fromSnapshot), .init("terms", termsChecked), .init("indices", committedLog.entries.count)],
            at: found.firstAt)
    }

    /// The first key whose value differs between a snapshot's state and the fold's.
    private func firstDifference(_ snapshot: KeyValueStore, _ folded: KeyValueStore) -> String {
        for key in Set(snapshot.values.keys).union(folded.values.keys).sorted() where snapshot[key] != folded[key] {
            return "key \(show(key)) is \(snapshot[key].map(show) ?? "absent") in the snapshot, \(folded[key].map(show) ?? "absent") in the log"
        }
        return "the same values, a different digest"
    }

    // MARK: 8

    func appliedInOrder() -> CheckResult {
        var found = Violations()
        var lines = 0, applied: LogIndex = 0, termsChecked = 0
        var silent: [String] = []
        for n in nodes {
            var next: LogIndex?  // the index the next apply must start at; nil before a start
            var any = false
            for e in n.events {
                switch e.event {
                case let .start(_, _, snapshotIndex):
                    next = snapshotIndex + 1
                case let .snapshotInstalled(_, index, _, _, _):
                    if let x = next, index + 1 < x {
                        found.add(
                            "\(n.name) installed a snapshot at index \(index) (\(events(n, e))) after applying through \(x - 1): entries \(index + 1)...\(x - 1) would be applied twice",
                            at: e.ts)
                    }
                    next = index + 1
                case let .apply(from, index, term):
                    any = true
                    lines += 1
                    if let x = next, from != x {
                        found.add(
                            from > x
                                ? "\(n.name) applied \(from)...\(index) (\(events(n, e))) but had applied only through \(x - 1): entries \(x)...\(from - 1) skipped"
                                : "\(n.name) applied \(from)...\(index) (\(events(n, e))) after applying through \(x - 1): entries \(from)...\(min(index, x - 1)) applied twice",
                            at: e.ts)
                    }
                    if index < from {
                        found.add("\(n.name)'s apply event \(events(n, e)) ends at \(index) before it begins at \(from)", at: e.ts)
                    }
                    if let c = committedLog[index] {
                        termsChecked += 1
                        if c.term != term {
                            found.add(
                                "\(n.name) applied the entry at index \(index) of term \(term) (\(events(n, e))), but the committed entry there has term \(c.term) (\(c.place))",
                                at: e.ts)
                        }
                    }
                    applied += index >= from ? index - from + 1 : 0
                    next = index + 1
                default:
                    break
                }
            }
            if !any { silent.append(n.name) }
        }
        var notes = ["\(lines) apply events, \(applied) entries applied, \(termsChecked) of their (index, term) found in the committed log"]
        if !silent.isEmpty {
            notes.append("no apply events from \(silent.joined(separator: ", ")) (a node started by hand, or one that applied nothing)")
        }
        return Self.result(
            "applied-in-order", found.evidence, notes,
            verified: [.init("apply events", lines), .init("entries", Int(applied)), .init("terms", termsChecked)], at: found.firstAt)
    }

    // MARK: 9

    func configurations() -> CheckResult {
        var found = Violations()
        func same(_ c: Configuration, members: [String], learners: [String]) -> Bool {
            Set(c.voters) == Set(members) && Set(c.learners) == Set(learners)
        }
        func text(_ c: Configuration) -> String {
            "members [\(c.voters.sorted().joined(separator: ","))] learners [\(c.learners.sorted().joined(separator: ","))]"
        }
        // What to judge, by index: committed config events, and snapshots.
        var claims: [LogIndex: [(node: NodeFiles, event: LoggedEvent, members: [String], learners: [String])]] = [:]
        for n in nodes {
            for e in n.events {
                if case let .config(index, members, learners, committed) = e.event, committed {
                    claims[index, default: []].append((n, e, members, learners))
                }
            }
        }
        let snapshots = allSnapshots()
        var snapshotsAt: [LogIndex: [(node: NodeFiles, info: SnapshotInfo)]] = [:]
        for s in snapshots { snapshotsAt[s.info.index, default: []].append(s) }
        let last = max(claims.keys.max() ?? 0, snapshotsAt.keys.max() ?? 0)
        var config: (Configuration, String)?
        var basis = Basis.log
        var eventsChecked = 0, snapshotsChecked = 0, unverified = 0
        var index: LogIndex = 0
        while true {
            if index > 0 {
                if let e = committedLog[index] {
                    if e.entry.type == .config {
                        if let c = e.entry.configuration {
                            config = (c, e.place)
                            basis = .log
                        } else {
                            basis = .none
                        }
                    }
                } else {
                    basis = .none
                }
            }
            // Snapshots first: one after a gap gives the configuration from there on.
            if let group = snapshotsAt[index] {
                for (n, info) in group {
                    if basis.isKnown, let (c, place) = config {
                        snapshotsChecked += 1
                        if !same(c, members: info.configuration.voters, learners: info.configuration.learners) {
                            found.add(
                                "\(n.name)'s snapshot \(info.file) at index \(index) holds \(text(info.configuration)), but the configuration in force there is \(text(c)) (\(place))\(basis.relative)",
                                at: snapshotTime(n, index))
                        }
                    } else {
                        unverified += 1
                        config = (info.configuration, info.file)
                        basis = index == 0 ? .log : .snapshot(info.file)
                    }
                }
            }
            if let group = claims[index] {
                for (n, e, members, learners) in group {
                    guard basis.isKnown, let (c, place) = config else {
                        unverified += 1
                        continue
                    }
                    eventsChecked += 1
                    if !same(c, members: members, learners: learners) {
                        found.add(
                            "\(n.name) reported committed configuration members [\(members.sorted().joined(separator: ","))] learners [\(learners.sorted().joined(separator: ","))] at index \(index) (\(events(n, e))), but the configuration in force there is \(text(c)) (\(place))\(basis.relative)",
                            at: e.ts)
                    }
                }
            }
            if index >= last { break }
            index += 1
        }
        let notes = ["\(eventsChecked) committed config events and \(snapshotsChecked) snapshot configurations checked against the committed log; \(unverified) not verifiable (after indices no file holds)"]
        return Self.result(
            "configurations", found.evidence, notes, verified: [.init("config events", eventsChecked), .init("snapshots", snapshotsChecked)], at: found.firstAt)
    }
}
