import Raft

/// One line of a node's `events.jsonl` (SPEC section 4), without the fields every line has
/// (`ts`, `node`, `term`, `event`).
public enum NodeEvent: Sendable, Hashable {
    case start(lastIndex: LogIndex, commitIndex: LogIndex, snapshotIndex: LogIndex)
    case stop(reason: String)
    /// `role` as SPEC names it; `preVote` marks a pre-candidate (written as `candidate`).
    case role(String, preVote: Bool)
    case vote(for: NodeID)
    case truncate(from: LogIndex)
    case compact(through: LogIndex)
    case commit(index: LogIndex)
    case config(index: LogIndex, members: [NodeID], learners: [NodeID], committed: Bool)
    case snapshotTaken(index: LogIndex, snapshotTerm: Term, bytes: UInt64, ms: Int)
    case snapshotSent(to: NodeID, index: LogIndex, snapshotTerm: Term, bytes: UInt64, ms: Int)
    case snapshotInstalled(from: NodeID, index: LogIndex, snapshotTerm: Term, bytes: UInt64, ms: Int)
    case snapshotAbandoned(to: NodeID, index: LogIndex, offset: UInt64, reason: String)
    /// Entries `from` through `index` applied. `term` is the entry at `index`'s, and it is
    /// the line's `term` (SPEC section 4 names one `term` for the line).
    case apply(from: LogIndex, index: LogIndex, term: Term)
    case error(what: String, detail: String)

    /// The `event` field.
    public var kind: String {
        switch self {
        case .start: "start"
        case .stop: "stop"
        case .role: "role"
        case .vote: "vote"
        case .truncate: "truncate"
        case .compact: "compact"
        case .commit: "commit"
        case .config: "config"
        case .snapshotTaken: "snapshot-taken"
        case .snapshotSent: "snapshot-sent"
        case .snapshotInstalled: "snapshot-installed"
        case .snapshotAbandoned: "snapshot-abandoned"
        case .apply: "apply"
        case .error: "error"
        }
    }

    /// The fields after `event`, in the order they are written.
    public var fields: [(String, JSONValue)] {
        func n(_ x: UInt64) -> JSONValue { .int(Int64(x)) }
        switch self {
        case let .start(last, commit, snap): return [("lastIndex", n(last)), ("commitIndex", n(commit)), ("snapshotIndex", n(snap))]
        case let .stop(reason): return [("reason", .string(reason))]
        case let .role(role, preVote): return [("role", .string(role))] + (preVote ? [("preVote", .bool(true))] : [])
        case let .vote(candidate): return [("for", .string(candidate))]
        case let .truncate(from): return [("from", n(from))]
        case let .compact(through): return [("through", n(through))]
        case let .commit(index): return [("index", n(index))]
        case let .config(index, members, learners, committed):
            return [("index", n(index)), ("members", .strings(members)), ("learners", .strings(learners)), ("phase", .string(committed ? "committed" : "appended"))]
        case let .snapshotTaken(index, term, bytes, ms):
            return [("index", n(index)), ("snapshotTerm", n(term)), ("bytes", n(bytes)), ("ms", .int(Int64(ms)))]
        case let .snapshotSent(to, index, term, bytes, ms):
            return [("to", .string(to)), ("index", n(index)), ("snapshotTerm", n(term)), ("bytes", n(bytes)), ("ms", .int(Int64(ms)))]
        case let .snapshotInstalled(from, index, term, bytes, ms):
            return [("from", .string(from)), ("index", n(index)), ("snapshotTerm", n(term)), ("bytes", n(bytes)), ("ms", .int(Int64(ms)))]
        case let .snapshotAbandoned(to, index, offset, reason):
            return [("to", .string(to)), ("index", n(index)), ("offset", n(offset)), ("reason", .string(reason))]
        case let .apply(from, index, _): return [("index", n(index)), ("from", n(from))]
        case let .error(what, detail): return [("what", .string(what)), ("detail", .string(detail))]
        }
    }

    /// The line's `term`: the node's, but for `apply`, whose term is its entry's.
    private func lineTerm(_ nodeTerm: Term) -> Term {
        if case let .apply(_, _, t) = self { t } else { nodeTerm }
    }

    /// The whole line, without its newline.
    public func line(ts: String, node: NodeID, term: Term) -> String {
        JSONValue.object(
            [("ts", .string(ts)), ("node", .string(node)), ("term", .int(Int64(lineTerm(term)))), ("event", .string(kind))] + fields
        ).serialized
    }

    /// The same as `key=value` words after the timestamp (what node.log shows).
    public func words(node: NodeID, term: Term) -> String {
        ([("node", JSONValue.string(node)), ("term", .int(Int64(lineTerm(term)))), ("event", .string(kind))] + fields)
            .map { "\($0.0)=\($0.1.serialized)" }.joined(separator: " ")
    }
}

/// One events.jsonl line, read back: the fields every line has, and the event.
public struct NodeEventLine: Sendable, Hashable {
    public var ts: String
    public var node: NodeID
    public var term: Term
    public var event: NodeEvent

    /// Nil for a line that is not an event of SPEC section 4 (unknown kinds included).
    public init?(parsing line: String) {
        guard let value = JSONValue.parse(line) else { return nil }
        self.init(value)
    }

    /// Nil for a value that is not an event object of SPEC section 4.
    public init?(_ value: JSONValue) {
        guard case let .object(members) = value else { return nil }
        var f: [String: JSONValue] = [:]
        for (k, v) in members where f[k] == nil { f[k] = v }
        func s(_ k: String) -> String? { if case let .string(x)? = f[k] { x } else { nil } }
        func u(_ k: String) -> UInt64? { if case let .int(x)? = f[k], x >= 0 { UInt64(x) } else { nil } }
        func i(_ k: String) -> Int? { if case let .int(x)? = f[k] { Int(x) } else { nil } }
        func list(_ k: String) -> [String]? {
            guard case let .array(xs)? = f[k] else { return nil }
            var out: [String] = []
            for x in xs {
                guard case let .string(v) = x else { return nil }
                out.append(v)
            }
            return out
        }
        guard let ts = s("ts"), let node = s("node"), let term = u("term"), let kind = s("event") else { return nil }
        let event: NodeEvent?
        switch kind {
        case "start": event = u("lastIndex").flatMap { l in u("commitIndex").flatMap { c in u("snapshotIndex").map { .start(lastIndex: l, commitIndex: c, snapshotIndex: $0) } } }
        case "stop": event = s("reason").map { .stop(reason: $0) }
        case "role": event = s("role").map { .role($0, preVote: f["preVote"] == .bool(true)) }
        case "vote": event = s("for").map { .vote(for: $0) }
        case "truncate": event = u("from").map { .truncate(from: $0) }
        case "compact": event = u("through").map { .compact(through: $0) }
        case "commit": event = u("index").map { .commit(index: $0) }
        case "config":
            if let index = u("index"), let m = list("members"), let l = list("learners"), let phase = s("phase") {
                event = .config(index: index, members: m, learners: l, committed: phase == "committed")
            } else {
                event = nil
            }
        case "snapshot-taken":
            event = u("index").flatMap { x in u("snapshotTerm").flatMap { t in u("bytes").flatMap { b in i("ms").map { .snapshotTaken(index: x, snapshotTerm: t, bytes: b, ms: $0) } } } }
        case "snapshot-sent":
            event = s("to").flatMap { to in u("index").flatMap { x in u("snapshotTerm").flatMap { t in u("bytes").flatMap { b in i("ms").map { .snapshotSent(to: to, index: x, snapshotTerm: t, bytes: b, ms: $0) } } } } }
        case "snapshot-installed":
            event = s("from").flatMap { fr in u("index").flatMap { x in u("snapshotTerm").flatMap { t in u("bytes").flatMap { b in i("ms").map { .snapshotInstalled(from: fr, index: x, snapshotTerm: t, bytes: b, ms: $0) } } } } }
        case "snapshot-abandoned":
            event = s("to").flatMap { to in u("index").flatMap { x in u("offset").flatMap { o in s("reason").map { .snapshotAbandoned(to: to, index: x, offset: o, reason: $0) } } } }
        case "apply": event = u("index").map { .apply(from: u("from") ?? $0, index: $0, term: term) }
        case "error": event = s("what").flatMap { w in s("detail").map { .error(what: w, detail: $0) } }
        default: event = nil
        }
        guard let event else { return nil }
        self.ts = ts
        self.node = node
        self.term = term
        self.event = event
    }
}
