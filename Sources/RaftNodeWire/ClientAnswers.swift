import Raft

/// The `error` of a failed answer (SPEC section 5), and what it says of the request.
public enum ClientError: String, Sendable, Hashable, CaseIterable {
    case notLeader = "not-leader"
    case timeout
    case busy
    case badRequest = "bad-request"
    case shuttingDown = "shutting-down"
    case configChangeInProgress = "config-change-in-progress"
    case leadershipLost = "leadership-lost"

    /// True when the request may still take effect (`timeout`, `leadership-lost`): history
    /// `unknown`. Every other error means it was not proposed: history `fail`.
    public var outcomeUnknown: Bool { self == .timeout || self == .leadershipLost }
}

/// What the leader knows of one other member or learner (SPEC section 5, `peers`).
public struct PeerProgressReport: Sendable, Hashable {
    public var state: String
    public var match: LogIndex
    public var next: LogIndex
    public var lastHeardMs: Int64
    /// While a snapshot is in flight: its index, the acknowledged bytes and the file's size.
    public var transfer: Transfer?

    public struct Transfer: Sendable, Hashable {
        public var index: LogIndex
        public var offset: UInt64
        public var bytes: UInt64
        public var accepted: Bool
        public var installing: Bool
        public init(index: LogIndex, offset: UInt64, bytes: UInt64, accepted: Bool, installing: Bool) {
            self.index = index
            self.offset = offset
            self.bytes = bytes
            self.accepted = accepted
            self.installing = installing
        }
    }

    public init(state: String, match: LogIndex, next: LogIndex, lastHeardMs: Int64, transfer: Transfer? = nil) {
        self.state = state
        self.match = match
        self.next = next
        self.lastHeardMs = lastHeardMs
        self.transfer = transfer
    }

    var fields: [(String, JSONValue)] {
        var f: [(String, JSONValue)] = [
            ("state", .string(state)), ("match", .int(Int64(match))), ("next", .int(Int64(next))), ("lastHeardMs", .int(lastHeardMs)),
        ]
        if let t = transfer {
            f += [
                ("index", .int(Int64(t.index))), ("offset", .int(Int64(t.offset))), ("bytes", .int(Int64(t.bytes))),
                ("accepted", .bool(t.accepted)), ("installing", .bool(t.installing)),
            ]
        }
        return f
    }
}

/// A node's `status` answer (SPEC section 5).
public struct StatusReport: Sendable, Hashable {
    public var name: NodeID
    /// `follower`, `candidate` (a pre-candidate too), `leader`, `learner` or `snapshotting`.
    public var role: String
    public var term: Term
    public var leader: NodeID?
    public var commitIndex: LogIndex
    public var appliedIndex: LogIndex
    public var lastIndex: LogIndex
    public var snapshotIndex: LogIndex
    public var members: [NodeID]
    public var learners: [NodeID]
    /// The index of the configuration entry in force (committed when ≤ `commitIndex`).
    public var configIndex: LogIndex
    public var digest: String
    public var snapshotting: Bool
    /// A leader's view of the others, by name; nil on any other node.
    public var peers: [(NodeID, PeerProgressReport)]?

    public init(
        name: NodeID, role: String, term: Term, leader: NodeID?, commitIndex: LogIndex, appliedIndex: LogIndex, lastIndex: LogIndex,
        snapshotIndex: LogIndex, members: [NodeID], learners: [NodeID], configIndex: LogIndex, digest: String, snapshotting: Bool,
        peers: [(NodeID, PeerProgressReport)]?
    ) {
        self.name = name
        self.role = role
        self.term = term
        self.leader = leader
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.lastIndex = lastIndex
        self.snapshotIndex = snapshotIndex
        self.members = members
        self.learners = learners
        self.configIndex = configIndex
        self.digest = digest
        self.snapshotting = snapshotting
        self.peers = peers
    }

    public static func == (a: StatusReport, b: StatusReport) -> Bool { JSONValue.object(a.fields) == JSONValue.object(b.fields) }
    public func hash(into h: inout Hasher) { h.combine(JSONValue.object(fields)) }

    var fields: [(String, JSONValue)] {
        var f: [(String, JSONValue)] = [
            ("name", .string(name)), ("role", .string(role)), ("term", .int(Int64(term))), ("leader", leader.map { .string($0) } ?? .null),
            ("commitIndex", .int(Int64(commitIndex))), ("appliedIndex", .int(Int64(appliedIndex))), ("lastIndex", .int(Int64(lastIndex))),
            ("snapshotIndex", .int(Int64(snapshotIndex))), ("members", .strings(members)), ("learners", .strings(learners)),
            ("configIndex", .int(Int64(configIndex))), ("digest", .string(digest)), ("snapshotting", .bool(snapshotting)),
        ]
        if let peers { f.append(("peers", .object(peers.map { ($0.0, .object($0.1.fields)) }))) }
        return f
    }
}

/// The answer to one client request, before its `id` is added (SPEC section 5).
public enum ClientAnswer: Sendable, Hashable {
    /// A put or delete, committed and applied.
    case written(index: LogIndex, term: Term)
    /// A get, applied: the value then (nil for a key with none).
    case read(value: String?, index: LogIndex)
    case status(StatusReport)
    /// A snapshot, an add or a remove: done at `index`.
    case done(index: LogIndex)
    case failed(ClientError, leader: NodeID? = nil, detail: String? = nil)

    /// The answer's JSON object, `id` first.
    public func fields(id: JSONValue) -> [(String, JSONValue)] {
        switch self {
        case let .written(index, term):
            return [("id", id), ("ok", .bool(true)), ("index", .int(Int64(index))), ("term", .int(Int64(term)))]
        case let .read(value, index):
            return [("id", id), ("ok", .bool(true)), ("value", value.map { .string($0) } ?? .null), ("index", .int(Int64(index)))]
        case let .status(s):
            return [("id", id), ("ok", .bool(true))] + s.fields
        case let .done(index):
            return [("id", id), ("ok", .bool(true)), ("index", .int(Int64(index)))]
        case let .failed(error, leader, detail):
            return [("id", id), ("ok", .bool(false)), ("error", .string(error.rawValue))] + (leader.map { [("leader", .string($0))] } ?? [])
                + (detail.map { [("detail", .string($0))] } ?? [])
        }
    }

    /// The answer line, without its newline.
    public func line(id: JSONValue) -> String { JSONValue.object(fields(id: id)).serialized }

    /// The index an `ok` answer names (nil for a status or a failure).
    public var index: LogIndex? {
        switch self {
        case let .written(i, _), let .read(_, i), let .done(i): i
        case .status, .failed: nil
        }
    }
}

extension ClientAnswer {
    /// Reads the answer line to `op`; nil when it is not an answer of SPEC section 5 (an
    /// unknown error included).
    public init?(parsing line: String, for op: ClientOp) {
        guard let o = JSONValue.parse(line), let ok = o["ok"]?.boolValue else { return nil }
        func index() -> LogIndex? { o["index"]?.intValue.flatMap { $0 >= 0 ? LogIndex($0) : nil } }
        guard ok else {
            guard let e = o["error"]?.stringValue.flatMap(ClientError.init(rawValue:)) else { return nil }
            self = .failed(e, leader: o["leader"]?.stringValue, detail: o["detail"]?.stringValue)
            return
        }
        switch op {
        case .put, .delete:
            guard let i = index(), let t = o["term"]?.intValue, t >= 0 else { return nil }
            self = .written(index: i, term: Term(t))
        case .get:
            guard let i = index(), let v = o["value"] else { return nil }
            if v == .null {
                self = .read(value: nil, index: i)
            } else if let s = v.stringValue {
                self = .read(value: s, index: i)
            } else {
                return nil
            }
        case .status:
            guard let s = StatusReport(o) else { return nil }
            self = .status(s)
        case .snapshot, .add, .remove:
            guard let i = index() else { return nil }
            self = .done(index: i)
        }
    }
}

extension StatusReport {
    /// From a `status` answer's object; nil when a field is missing or of the wrong kind.
    public init?(_ o: JSONValue) {
        func u(_ k: String) -> UInt64? { o[k]?.intValue.flatMap { $0 >= 0 ? UInt64($0) : nil } }
        func names(_ k: String) -> [String]? {
            guard case let .array(xs)? = o[k] else { return nil }
            let out = xs.compactMap(\.stringValue)
            return out.count == xs.count ? out : nil
        }
        guard let name = o["name"]?.stringValue, let role = o["role"]?.stringValue, let term = u("term"),
            let commit = u("commitIndex"), let applied = u("appliedIndex"), let members = names("members"),
            let learners = names("learners"), let digest = o["digest"]?.stringValue, let snapshotting = o["snapshotting"]?.boolValue
        else { return nil }
        var peers: [(NodeID, PeerProgressReport)]?
        if case let .object(ps)? = o["peers"] {
            peers = ps.compactMap { name, p in
                guard let state = p["state"]?.stringValue, let m = p["match"]?.intValue, let n = p["next"]?.intValue else { return nil }
                var transfer: PeerProgressReport.Transfer?
                if let i = p["index"]?.intValue, let off = p["offset"]?.intValue, let b = p["bytes"]?.intValue {
                    transfer = .init(
                        index: LogIndex(i), offset: UInt64(off), bytes: UInt64(b), accepted: p["accepted"]?.boolValue ?? false,
                        installing: p["installing"]?.boolValue ?? false)
                }
                return (name, PeerProgressReport(state: state, match: LogIndex(m), next: LogIndex(n), lastHeardMs: p["lastHeardMs"]?.intValue ?? 0, transfer: transfer))
            }
        }
        self.init(
            name: name, role: role, term: term, leader: o["leader"]?.stringValue, commitIndex: commit, appliedIndex: applied,
            lastIndex: u("lastIndex") ?? 0, snapshotIndex: u("snapshotIndex") ?? 0, members: members, learners: learners,
            configIndex: u("configIndex") ?? 0, digest: digest, snapshotting: snapshotting, peers: peers)
    }
}
