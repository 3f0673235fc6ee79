import Raft
import RaftNodeWire

// Check 6 of SPEC section 3: the history of puts and gets, each key a register, must be
// linearizable. Wing and Gong's search with Lowe's memoisation, one key at a time (a history
// is linearizable exactly when each key's is), as Porcupine does. An `unknown` operation has
// no completion: it may take effect at any time after its invocation, or never (for a
// register, never is the same as last, where nothing observes it). A get whose outcome is
// unknown constrains nothing and is left out; a failed operation did not happen.

/// One operation on a register, as the history records it.
public struct RegisterOperation: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case put(String)
        /// A get and the value it read (nil: the key had none).
        case get(String?)
    }

    public var client: String
    public var kind: Kind
    /// When it was invoked and when its answer came (nil: unknown, it never completed).
    public var invoked: Int64
    public var completed: Int64?
    /// Its place in the history, for the evidence.
    public var position: Int

    public init(client: String, kind: Kind, invoked: Int64, completed: Int64?, position: Int) {
        self.client = client
        self.kind = kind
        self.invoked = invoked
        self.completed = completed
        self.position = position
    }

    /// As check 6's evidence names it: who, what, when (times as a run writes them, `invoked`
    /// and `completed` being microseconds since the UNIX epoch), and where in history.jsonl.
    public var description: String {
        let what: String
        switch kind {
        case let .put(v): what = "put \(Self.short(v))"
        case let .get(v): what = "get read \(v.map(Self.short) ?? "nothing")"
        }
        let to = completed.map { Timestamp.rfc3339(unixMicros: $0) } ?? "unknown"
        return "\(client) \(what) (\(Timestamp.rfc3339(unixMicros: invoked)) to \(to), invoked at history.jsonl line \(position))"
    }

    private static func short(_ v: String) -> String { v.count > 24 ? String(v.prefix(24)) + "…" : v }
}

public enum Linearizability {
    /// What the check found for one key.
    public enum Verdict: Sendable, Hashable {
        case linearizable
        /// A fragment of the key's history that cannot be linearized; `minimal` when without any
        /// one of its gets, or a put none of its gets reads, it can (false when the budget ran
        /// out while shrinking).
        case violation([RegisterOperation], minimal: Bool)
        /// The search ran out of its step budget: neither a pass nor a failure.
        case unknown
    }

    /// Whether `operations` (one key's, in any order) can be linearized as a register that
    /// starts with no value; nil when the search takes more than `budget` steps.
    public static func isLinearizable(_ operations: [RegisterOperation], budget: Int = 5_000_000) -> Bool? {
        var steps = 0
        return search(operations, budget: budget, steps: &steps)
    }

    /// The verdict on one key's operations. On a violation, the fragment is shrunk by
    /// dropping operations that cannot hide a violation when dropped: any get (it only
    /// constrains), and a put whose value no get left reads. So the fragment failing shows
    /// that the whole history fails, and not for a reason the shrinking made.
    public static func check(_ operations: [RegisterOperation], budget: Int = 5_000_000, shrinkBudget: Int = 20_000_000) -> Verdict {
        var steps = 0
        guard let ok = search(operations, budget: budget, steps: &steps) else { return .unknown }
        if ok { return .linearizable }
        var fragment = operations.sorted { $0.position < $1.position }
        // Gets first (latest first: a violation is often early), then puts.
        let order = fragment.indices.reversed().filter { if case .get = fragment[$0].kind { true } else { false } }
            + fragment.indices.reversed().filter { if case .put = fragment[$0].kind { true } else { false } }
        var dropped = Set<Int>()
        var shrinkSteps = 0
        for i in order {
            if case let .put(v) = fragment[i].kind,
                fragment.indices.contains(where: { !dropped.contains($0) && fragment[$0].kind == .get(v) })
            {
                continue
            }
            let without = fragment.indices.filter { $0 != i && !dropped.contains($0) }.map { fragment[$0] }
            guard let fine = search(without, budget: shrinkBudget, steps: &shrinkSteps) else {
                let left = fragment.indices.filter { !dropped.contains($0) }.map { fragment[$0] }
                return .violation(left, minimal: false)
            }
            if !fine { dropped.insert(i) }
        }
        fragment = fragment.indices.filter { !dropped.contains($0) }.map { fragment[$0] }
        return .violation(fragment, minimal: true)
    }

    // MARK: The search

    /// Wing and Gong's search over the call and return events in time order, with the cache
    /// of (operations linearized, register value) that Lowe added: a state met twice is
    /// explored once.
    static func search(_ all: [RegisterOperation], budget: Int, steps: inout Int) -> Bool? {
        // A get whose answer never came read nothing anyone knows: it constrains nothing.
        let operations = all.filter { if case .get = $0.kind, $0.completed == nil { false } else { true } }
        let n = operations.count
        if n == 0 { return true }
        // Values as small integers (0: no value).
        var valueIDs: [String: Int] = [:]
        func id(_ v: String?) -> Int {
            guard let v else { return 0 }
            if let i = valueIDs[v] { return i }
            let i = valueIDs.count + 1
            valueIDs[v] = i
            return i
        }
        let ops: [(put: Bool, value: Int)] = operations.map {
            switch $0.kind {
            case let .put(v): (true, id(v))
            case let .get(v): (false, id(v))
            }
        }
        // Events: 2 per operation (call 2i, return 2i+1), in time order; at equal times calls
        // come first, so that operations that touch are taken as concurrent (never a false
        // alarm from a clock's resolution).
        var events: [(time: Int64, isReturn: Bool, op: Int)] = []
        events.reserveCapacity(2 * n)
        for (i, o) in operations.enumerated() {
            events.append((o.invoked, false, i))
            events.append((o.completed ?? .max, true, i))
        }
        events.sort { a, b in
            if a.time != b.time { return a.time < b.time }
            if a.isReturn != b.isReturn { return !a.isReturn }
            return a.op < b.op
        }
        // A doubly linked list over the events, node 0 the head.
        let count = events.count
        var next = [Int](repeating: 0, count: count + 1)
        var prev = [Int](repeating: 0, count: count + 1)
        for k in 0...count {
            next[k] = k < count ? k + 1 : -1
            prev[k] = k - 1
        }
        var callNode = [Int](repeating: 0, count: n)
        var returnNode = [Int](repeating: 0, count: n)
        for (k, e) in events.enumerated() {
            if e.isReturn { returnNode[e.op] = k + 1 } else { callNode[e.op] = k + 1 }
        }
        func unlink(_ k: Int) {
            next[prev[k]] = next[k]
            if next[k] != -1 { prev[next[k]] = prev[k] }
        }
        func relink(_ k: Int) {
            next[prev[k]] = k
            if next[k] != -1 { prev[next[k]] = k }
        }

        struct Seen: Hashable {
            var done: [UInt64]
            var value: Int
        }
        var done = [UInt64](repeating: 0, count: (n + 63) / 64)
        var cache: Set<Seen> = []
        var value = 0
        var stack: [(op: Int, value: Int)] = []
        var entry = next[0]
        while next[0] != -1 {
            steps += 1
            if steps > budget { return nil }
            let e = events[entry - 1]
            if !e.isReturn {
                let o = ops[e.op]
                let fits = o.put || o.value == value
                let after = o.put ? o.value : value
                if fits {
                    done[e.op >> 6] |= 1 << UInt64(e.op & 63)
                    if cache.insert(Seen(done: done, value: after)).inserted {
                        stack.append((e.op, value))
                        value = after
                        unlink(callNode[e.op])
                        unlink(returnNode[e.op])
                        entry = next[0]
                        continue
                    }
                    done[e.op >> 6] &= ~(1 << UInt64(e.op & 63))
                }
                entry = next[entry]
            } else {
                // An operation's answer came before it could be placed: undo the last choice.
                guard let (op, before) = stack.popLast() else { return false }
                done[op >> 6] &= ~(1 << UInt64(op & 63))
                value = before
                relink(returnNode[op])
                relink(callNode[op])
                entry = next[callNode[op]]
            }
        }
        return true
    }
}

extension Linearizability {
    /// The verdict on a whole history, key by key (a history is linearizable exactly when
    /// each key's is), with how many operations each verdict covered.
    public struct Report: Sendable {
        public var keys = 0
        public var operations = 0
        /// The first violation found (by key name), if any.
        public var violation: (key: String, fragment: [RegisterOperation], minimal: Bool)?
        /// Keys whose search ran out of budget.
        public var unknownKeys: [String] = []

        public var passed: Bool { violation == nil && unknownKeys.isEmpty }
    }

    public static func check(byKey history: [String: [RegisterOperation]], budget: Int = 5_000_000) -> Report {
        var report = Report()
        for key in history.keys.sorted() {
            let ops = history[key]!
            report.keys += 1
            report.operations += ops.count
            switch check(ops, budget: budget) {
            case .linearizable: break
            case .unknown: report.unknownKeys.append(key)
            case let .violation(fragment, minimal):
                if report.violation == nil { report.violation = (key, fragment, minimal) }
            }
        }
        return report
    }

    /// A linearizable history for the benchmark and the tests: `clients` clients, each one
    /// operation at a time, on `keys` registers; each operation takes effect at a random
    /// instant inside its interval (so the history is linearizable by construction), and a
    /// share of the puts is `unknown` (no completion; some took effect, some never did).
    public static func syntheticHistory(
        seed: UInt64, operations: Int, keys: Int, clients: Int, unknownShare: Double, readShare: Double = 0.5
    ) -> [String: [RegisterOperation]] {
        var rng = SeededRandom(seed: seed)
        var clock = [Int64](repeating: 0, count: clients)
        // Each operation's effect, in order of its instant.
        struct Planned {
            var key: String
            var op: RegisterOperation
            var at: Int64
            var takesEffect: Bool
        }
        var planned: [Planned] = []
        planned.reserveCapacity(operations)
        for i in 0..<operations {
            let c = Int(rng.next() % UInt64(clients))
            let start = clock[c] + Int64(rng.next() % 50)
            let length = 1 + Int64(rng.next() % 200)
            let at = start + Int64(rng.next() % UInt64(length))
            let key = "k\(rng.next() % UInt64(keys))"
            let isRead = Double(rng.next() % 1000) / 1000 < readShare
            let unknown = !isRead && Double(rng.next() % 10_000) / 10_000 < unknownShare
            clock[c] = start + length
            let op = RegisterOperation(
                client: "c\(c)", kind: isRead ? .get(nil) : .put("v\(i)"), invoked: start, completed: unknown ? nil : start + length,
                position: i)
            planned.append(Planned(key: key, op: op, at: at, takesEffect: !unknown || rng.next() % 2 == 0))
        }
        var value: [String: String] = [:]
        var history: [String: [RegisterOperation]] = [:]
        for var p in planned.sorted(by: { ($0.at, $0.op.position) < ($1.at, $1.op.position) }) {
            switch p.op.kind {
            case let .put(v): if p.takesEffect { value[p.key] = v }
            case .get: p.op.kind = .get(value[p.key])
            }
            history[p.key, default: []].append(p.op)
        }
        return history
    }
}
