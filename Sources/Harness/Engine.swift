import Foundation
import Raft
import RaftNodeMachine
import RaftNodeWire

/// Where a run writes what happened: `harness.log` (a line per step) and `history.jsonl`
/// (a line when each client operation is invoked and one when it ends), SPEC section 3.
public protocol RunRecorder: AnyObject, Sendable {
    func log(_ line: String)
    func history(_ fields: [(String, String)])
}

/// Runs a scenario's steps in order against a back end; the first failing step stops it.
public final class Engine {
    let backend: any ClusterBackend
    let recorder: any RunRecorder
    var rng: SeededRandom
    var settings = NodeSettings()
    var valueSize = 100
    var defaultTimeoutMs = 10_000
    var variables: [String: String] = [:]
    var batches: [String: [Task<WriteOutcome, Never>]] = [:]
    var writeSeq = 0
    let clientName: String
    /// Runs the checker (SPEC section 3) now; a non-empty answer fails the step.
    public var check: (() async -> [String])?
    /// Called with each step's outcome line (for the person watching).
    public var progress: ((String) -> Void)?
    let clock: any RunClock
    let startedMs: Int

    public init(backend: any ClusterBackend, recorder: any RunRecorder, seed: UInt64, clientName: String = "harness") {
        self.backend = backend
        self.clock = backend.clock
        self.startedMs = backend.clock.nowMs
        self.recorder = recorder
        self.rng = SeededRandom(seed: seed)
        self.clientName = clientName
    }

    /// A step that failed, and why.
    public struct StepFailure: Error, CustomStringConvertible, Sendable {
        public var line: Int
        public var text: String
        public var message: String
        /// When it failed (the run's clock, microseconds since the UNIX epoch).
        public var atUnixMicros: Int64?
        public var description: String { "line \(line): \(text): \(message)" }
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
        init(_ message: String) { self.message = message }
    }

    /// Runs every step; returns the first failure, or nil when all passed. A load still
    /// running at the end is stopped and waited for.
    public func run(_ scenario: Scenario) async -> StepFailure? {
        let failure = await run(scenario.steps)
        await stopLoad()
        return failure
    }

    /// Steps that ended ok (each pass of a `repeat` body counted again).
    public private(set) var stepsDone = 0

    /// The background clients of `load`, while they run.
    var load: LoadClients?

    func stopLoad() async {
        guard let l = load else { return }
        load = nil
        await l.stop()
        recorder.log("load stopped after \(l.operations) operations")
    }

    func run(_ steps: [Located]) async -> StepFailure? {
        for located in steps {
            if case let .repeat(n, body) = located.step {
                for pass in 1...n {
                    report(located, "pass \(pass) of \(n)", ms: 0)
                    if let failure = await run(body) { return failure }
                }
                continue
            }
            let t0 = clock.nowMs
            do {
                let detail = try await perform(located.step)
                report(located, "ok" + (detail.isEmpty ? "" : " (\(detail))"), ms: clock.nowMs - t0)
                stepsDone += 1
            } catch {
                let message = "\(error)"
                report(located, "FAILED: \(message)", ms: clock.nowMs - t0)
                return StepFailure(line: located.line, text: located.text, message: message, atUnixMicros: clock.unixMicros)
            }
        }
        return nil
    }

    func report(_ located: Located, _ outcome: String, ms: Int) {
        let elapsed = clock.nowMs - startedMs
        let line = String(format: "%8.3fs  line %-3d %-40@ %@ [%dms]", Double(elapsed) / 1000, located.line, located.text as NSString, outcome as NSString, ms)
        recorder.log(line)
        progress?(line)
    }

    // MARK: Nodes

    /// The node a reference names now: a name, a bound variable, the leader (waiting for one
    /// up to the default timeout) or a running follower chosen with the seed.
    func resolve(_ ref: NodeRef) async throws -> String {
        let name: String
        switch ref.selector {
        case let .named(n): name = n
        case let .variable(v):
            guard let n = variables[v] else { throw Failure("$\(v) is not bound") }
            name = n
        case .leader:
            name = try await awaitLeader(among: nil, withinMs: defaultTimeoutMs)
        case .follower:
            var followers: [String] = []
            for n in backend.running.sorted() where !backend.paused.contains(n) {
                if let s = await backend.status(n), s.role != "leader", s.members.contains(n) || s.learners.contains(n) { followers.append(n) }
            }
            guard !followers.isEmpty else { throw Failure("no running follower") }
            name = followers[Int(rng.next() % UInt64(followers.count))]
        }
        if let b = ref.binding { variables[b] = name }
        return name
    }

    /// The leader that one node claims to be and a majority of its members agree on (same
    /// leader, same term).
    func currentLeader(among: Set<String>?) async -> String? { await Self.currentLeader(backend, among: among) }

    static func currentLeader(_ backend: any ClusterBackend, among: Set<String>?) async -> String? {
        var statuses: [String: NodeStatus] = [:]
        for n in backend.running where !backend.paused.contains(n) {
            if let s = await backend.status(n) { statuses[n] = s }
        }
        for (n, s) in statuses.sorted(by: { $0.key < $1.key }) where s.role == "leader" {
            if let among, !among.contains(n) { continue }
            let agree = s.members.filter { m in statuses[m].map { $0.leader == n && $0.term == s.term } ?? false }
            if agree.count >= s.members.count / 2 + 1 { return n }
        }
        return nil
    }

    func awaitLeader(among: Set<String>?, withinMs: Int) async throws -> String {
        let deadline = clock.nowMs + withinMs
        while true {
            if let l = await currentLeader(among: among) { return l }
            guard clock.nowMs < deadline else { throw Failure("no leader within \(withinMs)ms") }
            await clock.sleep(ms: 50)
        }
    }

    // MARK: Steps

    /// Carries out one step; returns a short detail for the log.
    func perform(_ step: Step) async throws -> String {
        switch step {
        case let .set(key, value):
            apply(setting: key, value)
            return ""
        case let .cluster(names):
            try await backend.createCluster(names, settings: settings)
            return names.joined(separator: " ")
        case let .start(ref):
            let n = try await resolve(ref)
            try await backend.start(n)
            return n
        case let .stop(ref):
            let n = try await resolve(ref)
            try await backend.stop(n)
            return n
        case let .kill(ref):
            let n = try await resolve(ref)
            try await backend.kill(n)
            return n
        case let .crash(ref):
            let n = try await resolve(ref)
            let cut = try await backend.crash(n)
            for line in cut { recorder.log("crash \(n): \(line)") }
            return cut.isEmpty ? "\(n), nothing unsynced" : "\(n), \(cut.count) files lost unsynced bytes"
        case let .pause(ref):
            let n = try await resolve(ref)
            try await backend.pause(n)
            return n
        case let .resume(ref):
            let n = try await resolve(ref)
            try await backend.resume(n)
            return n
        case let .wipe(ref):
            let n = try await resolve(ref)
            await awaitExitIfRunning(n)
            guard !backend.running.contains(n) else { throw Failure("\(n) is running; stop or kill it first") }
            try await backend.wipe(n)
            return n
        case let .isolate(ref):
            let n = try await resolve(ref)
            try await backend.isolate(n)
            return n
        case let .partition(groups):
            var names: [[String]] = []
            for g in groups {
                var group: [String] = []
                for ref in g { group.append(try await resolve(ref)) }
                names.append(group)
            }
            try await backend.partition(names)
            return names.map { $0.joined(separator: " ") }.joined(separator: " | ")
        case .heal:
            try await backend.partition(nil)
            try await backend.setLoss(percent: 0, delayMs: nil)
            return ""
        case let .networkLoss(percent, delay):
            try await backend.setLoss(percent: percent, delayMs: delay)
            return ""
        case let .write(n):
            for _ in 0..<n {
                let outcome = await write(to: nil)
                guard case .ok = outcome else { throw Failure("a write was not acknowledged within \(defaultTimeoutMs)ms: \(outcome)") }
            }
            return "\(n) acknowledged"
        case let .submit(count, ref, batch):
            let n = try await resolve(ref)
            var tasks = batches[batch] ?? []
            for _ in 0..<count {
                // A key of its own, so that a get can tell whether an unknown put committed.
                let value = nextWrite().1
                let key = "s-\(batch)-\(tasks.count)-\(writeSeq)"
                invoke(key: key, value: value, client: submitClient(batch: batch, index: tasks.count))
                let backend = self.backend
                let timeout = defaultTimeoutMs
                let finished = self.finished
                let id = "\(batch)#\(tasks.count)"
                tasks.append(
                    Task(executorPreference: clock.executor) {
                        let outcome = await backend.put(n, key: key, value: value, timeoutMs: timeout)
                        finished.withLockedValue { $0[id] = outcome }
                        return outcome
                    })
                // Outcomes are recorded when awaited.
                pendingRecords.append((key, value, tasks.count - 1, batch))
            }
            batches[batch] = tasks
            return "\(count) to \(n)"
        case let .awaitCommitted(batch, within):
            return try await awaitCommitted(batch: batch, withinMs: within)
        case let .awaitNotCommitted(batch, forMs):
            let tasks = batches[batch] ?? []
            await clock.sleep(ms: forMs)
            var acked = 0
            for i in tasks.indices {
                // Those still out after the wait are left to finish; only what ended counts.
                let outcome = finished.withLockedValue { $0["\(batch)#\(i)"] }
                if let outcome {
                    record(batch: batch, index: i, outcome)
                    if case .ok = outcome { acked += 1 }
                }
            }
            guard acked == 0 else { throw Failure("\(acked) of \(batch) were acknowledged") }
            // Nor committed without an answer: the majority's leader (if one answers) has none.
            if let leader = await currentLeader(among: nil) {
                for r in pendingRecords where r.batch == batch {
                    if case .found = await committedValue(key: r.key, value: r.value, at: leader) {
                        throw Failure("\(batch)'s put of \(r.key) is committed (\(leader) reads its value)")
                    }
                }
                return "none acknowledged, none read from \(leader)"
            }
            return "none acknowledged"
        case let .snapshot(ref):
            let n = try await resolve(ref)
            let answer = try await backend.request(n, .snapshot, timeoutMs: defaultTimeoutMs)
            return "\(n) at \(answer.index.map(String.init) ?? "?")"
        case let .add(ref):
            let name = try await resolve(ref)
            await awaitExitIfRunning(name)  // before it is started again empty
            let address = try await backend.startJoining(name, settings: settings)
            return "\(name) at \(try await changeConfiguration(.add(node: name, address: address), node: name, adding: true))"
        case let .remove(ref):
            let n = try await resolve(ref)
            return "\(n) at \(try await changeConfiguration(.remove(node: n), node: n, adding: false))"
        case let .sleep(ms):
            await clock.sleep(ms: ms)
            return ""
        case let .awaitLeader(among, within, binding):
            var names: Set<String>?
            if !among.isEmpty {
                names = []
                for ref in among { names!.insert(try await resolve(ref)) }
            }
            let l = try await awaitLeader(among: names, withinMs: within)
            if let binding { variables[binding] = l }
            return l
        case let .expectLeader(ref):
            let n = try await resolve(ref)
            let l = try await awaitLeader(among: nil, withinMs: defaultTimeoutMs)
            guard l == n else { throw Failure("the leader is \(l), not \(n)") }
            return l
        case let .awaitNoLeader(among, forMs):
            var names = Set<String>()
            for ref in among { names.insert(try await resolve(ref)) }
            let deadline = clock.nowMs + forMs
            while clock.nowMs < deadline {
                for n in names.sorted() where backend.running.contains(n) && !backend.paused.contains(n) {
                    if let s = await backend.status(n), s.role == "leader" { throw Failure("\(n) leads term \(s.term)") }
                }
                await clock.sleep(ms: 50)
            }
            return ""
        case let .awaitConverged(within):
            // A running load is paused meanwhile (SPEC section 2), then resumed.
            await load?.pause()
            defer { load?.resume() }
            return try await awaitConverged(withinMs: within)
        case let .awaitSnapshotting(ref, within):
            let n = try await resolve(ref)
            let deadline = clock.nowMs + within
            while true {
                if let s = await backend.status(n), s.role == "snapshotting" { return n }
                guard clock.nowMs < deadline else { throw Failure("\(n) received no snapshot within \(within)ms") }
                await clock.sleep(ms: 5)
            }
        case let .expectSnapshot(ref, what, atMost):
            let n = try await resolve(ref)
            let events = backend.events(n).compactMap { NodeEventLine(parsing: $0)?.event }
            let installed = events.filter { if case .snapshotInstalled = $0 { true } else { false } }.count
            let sent = events.contains { if case .snapshotSent = $0 { true } else { false } }
            switch what {
            case .installed:
                guard installed > 0 else { throw Failure("\(n) installed no snapshot") }
                if let atMost, installed > atMost { throw Failure("\(n) installed \(installed) snapshots, more than \(atMost)") }
            case .sent: guard sent else { throw Failure("\(n) sent no snapshot") }
            case .none: guard installed == 0 else { throw Failure("\(n) installed a snapshot") }
            }
            return what == .installed ? "\(n), \(installed) installed" : n
        case let .load(clients, reads, keys):
            guard load == nil else { throw Failure("a load is already running; 'load stop' first") }
            load = LoadClients(
                .init(clients: clients, readsPercent: reads, keys: keys, valueSize: valueSize, timeoutMs: defaultTimeoutMs, seed: rng.next()),
                backend: backend, recorder: recorder)
            return "\(clients) clients"
        case .loadStop:
            guard let l = load else { return "no load running" }
            await stopLoad()
            return "\(l.operations) operations"
        case .repeat:
            return ""  // run by `run(_:)`
        case .check:
            let problems = await check?() ?? []
            guard problems.isEmpty else { throw Failure(problems.joined(separator: "; ")) }
            return "all checks hold"
        }
    }

    /// A node just removed exits by itself (SPEC 2, remove): `wipe` and `add` give it the
    /// time to (up to the default timeout) before they act on its name.
    func awaitExitIfRunning(_ name: String) async {
        let deadline = clock.nowMs + defaultTimeoutMs
        while backend.running.contains(name) && clock.nowMs < deadline { await clock.sleep(ms: 50) }
    }

    var pendingRecords: [(key: String, value: String, index: Int, batch: String)] = []
    var recorded: Set<String> = []

    func record(batch: String, index: Int, _ outcome: WriteOutcome) {
        guard let r = pendingRecords.first(where: { $0.batch == batch && $0.index == index }), !recorded.contains("\(batch)#\(index)") else { return }
        recorded.insert("\(batch)#\(index)")
        complete(key: r.key, client: submitClient(batch: batch, index: index), outcome)
    }

    /// Outcomes of submitted puts that have ended, by "batch#index": a task's value cannot
    /// be awaited with a time limit (awaiting it is not cancellable).
    let finished = Locked<[String: WriteOutcome]>([:])

    func apply(setting key: String, _ value: String) {
        if let row = NodeSettings.row(key: key) {
            try? settings.set(row, value)  // checked when the scenario was parsed
            return
        }
        switch HarnessSetting(rawValue: key) {
        case .valueSize: valueSize = parseSize(value) ?? valueSize
        case .timeout: defaultTimeoutMs = parseDuration(value) ?? defaultTimeoutMs
        case nil: break
        }
    }

    // MARK: Client

    func nextWrite() -> (String, String) {
        writeSeq += 1
        return ("k\(writeSeq % 97)", Self.value(stamp: "w\(writeSeq)-", size: valueSize, rng: &rng))
    }

    /// A value of `size` bytes that begins with `stamp` (which makes it unique in a run), then
    /// seeded letters, so that values compress about as text does and snapshots have a
    /// realistic size.
    static func value(stamp: String, size: Int, rng: inout SeededRandom) -> String {
        var bytes = Array(stamp.utf8)
        let fill = max(0, size - bytes.count)
        bytes.reserveCapacity(bytes.count + fill)
        for _ in 0..<fill { bytes.append(UInt8(ascii: "a") + UInt8(rng.next() % 26)) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `client`: the engine's own name for its writes, one after another; each submitted
    /// put (several at once) is a client of its own, so that every line pairs with its invoke.
    func invoke(key: String, value: String, client: String? = nil) {
        recorder.history([("type", "invoke"), ("op", "put"), ("client", client ?? clientName), ("key", key), ("value", value)])
    }

    /// The history line that ends an operation (SPEC section 5: a refusal means not
    /// proposed, `fail`; `timeout`, `leadership-lost` or no answer, `unknown`). The value is
    /// on the invoke line only: a run of 64 KiB values wrote each twice.
    func complete(key: String, client: String? = nil, _ outcome: WriteOutcome) {
        let client = client ?? clientName
        switch outcome {
        case let .ok(index, term):
            recorder.history([("type", "ok"), ("op", "put"), ("client", client), ("key", key), ("index", "\(index)"), ("term", "\(term)")])
        case .refused, .failed:
            recorder.history([("type", "fail"), ("op", "put"), ("client", client), ("key", key)])
        case .unknown:
            recorder.history([("type", "unknown"), ("op", "put"), ("client", client), ("key", key)])
        }
    }

    /// The client name of a submitted put.
    func submitClient(batch: String, index: Int) -> String { "\(clientName)-\(batch)-\(index)" }

    /// One put through the leader, following redirects until acknowledged or out of time
    /// (SPEC section 2, `write`). A refusal (not proposed) is retried at the leader it names,
    /// within the same operation. An answer that leaves the outcome unknown (`timeout`,
    /// `leadership-lost`, none at all) ends the operation as `unknown` in the history, and
    /// the same key and value are sent again as a new operation, to the new leader: both may
    /// commit, and since no other put writes that value, the history and the files agree
    /// whichever does.
    func write(to node: String?) async -> WriteOutcome {
        let (key, value) = nextWrite()
        let deadline = clock.nowMs + defaultTimeoutMs
        var target = node
        var invoked = false
        var outcome = WriteOutcome.refused("no leader", leader: nil)
        var sawUnknown = false
        while clock.nowMs < deadline {
            if target == nil {
                target = await currentLeader(among: nil)
                if target == nil {
                    await clock.sleep(ms: 50)
                    continue
                }
            }
            if !invoked {
                invoke(key: key, value: value)
                invoked = true
            }
            let left = deadline - clock.nowMs
            outcome = await backend.put(target!, key: key, value: value, timeoutMs: max(1, left))
            switch outcome {
            case .ok:
                complete(key: key, outcome)
                return outcome
            case let .refused(_, leader):
                target = leader == target ? nil : leader
                if target == nil { await clock.sleep(ms: 50) }
            case let .unknown(_, leader):
                complete(key: key, outcome)
                invoked = false
                sawUnknown = true
                target = leader == target ? nil : leader
                if target == nil { await clock.sleep(ms: 50) }
            case .failed:
                complete(key: key, outcome)
                return outcome
            }
        }
        // Out of time with the last attempt refused, or never sent: not proposed.
        if invoked { complete(key: key, .refused("timeout", leader: nil)) }
        return sawUnknown ? .unknown("no acknowledgement within \(defaultTimeoutMs)ms", leader: nil) : outcome
    }

    /// An `add` or `remove` through the leader, done when the change is in a committed
    /// configuration (`add`: NODE a voter). An answer that leaves the outcome unknown (the
    /// leader lost its role, say) is followed by a look at the new leader's configuration
    /// before the request is sent again: the change may have been carried on by it (a learner
    /// being promoted), and a second `add` of a member would be refused.
    func changeConfiguration(_ op: ClientOp, node: String, adding: Bool) async throws -> String {
        let deadline = clock.nowMs + defaultTimeoutMs
        var lastError = "no leader"
        var lookFirst = false
        while clock.nowMs < deadline {
            guard let leader = await currentLeader(among: nil) else {
                await clock.sleep(ms: 50)
                continue
            }
            if lookFirst, let s = await backend.status(leader) {
                let committed = s.configIndex <= s.commitIndex
                if adding && committed && s.members.contains(node) { return "\(s.configIndex)" }
                if !adding && committed && !s.members.contains(node) && !s.learners.contains(node) { return "\(s.configIndex)" }
                if adding && s.learners.contains(node) {
                    lastError = "\(node) is a learner of \(leader), not yet promoted"
                    await clock.sleep(ms: 100)
                    continue
                }
            }
            do {
                let left = deadline - clock.nowMs
                let answer = try await backend.request(leader, op, timeoutMs: max(1, left))
                return answer.index.map(String.init) ?? "?"
            } catch {
                lastError = error.text
                switch error.outcome {
                case .refused, .ok:
                    await clock.sleep(ms: 100)
                case .unknown:
                    lookFirst = true
                case .failed:
                    // Refused as invalid: perhaps because an earlier attempt did it already.
                    guard lookFirst else { throw Failure(error.text) }
                    await clock.sleep(ms: 100)
                }
            }
        }
        throw Failure("not done within \(defaultTimeoutMs)ms: \(lastError)")
    }

    /// Whether a put of `value` to `key` is committed, read with a linearizable `get` at
    /// `node` (submitted puts have keys of their own, so the value stays until read).
    enum CommittedRead { case found, absent, unknown(String) }

    func committedValue(key: String, value: String, at node: String) async -> CommittedRead {
        do {
            let answer = try await backend.request(node, .get(key: key), timeoutMs: min(defaultTimeoutMs, 2000))
            guard case let .read(read, _) = answer else { return .unknown("\(answer)") }
            return read == value ? .found : .absent
        } catch {
            return .unknown(error.text)
        }
    }

    /// Every put of `batch` is committed within `withinMs`: acknowledged, or (when its
    /// answer left the outcome unknown) its value read back through the leader.
    func awaitCommitted(batch: String, withinMs: Int) async throws -> String {
        let tasks = batches[batch] ?? []
        let deadline = clock.nowMs + withinMs
        var acked = 0
        var read = 0
        var missing: [String] = []
        for (i, t) in tasks.enumerated() {
            let outcome = await t.value
            record(batch: batch, index: i, outcome)
            if case .ok = outcome {
                acked += 1
                continue
            }
            guard let r = pendingRecords.first(where: { $0.batch == batch && $0.index == i }) else { continue }
            var found = false
            while !found && clock.nowMs < deadline {
                if let leader = await currentLeader(among: nil), case .found = await committedValue(key: r.key, value: r.value, at: leader) {
                    found = true
                } else {
                    await clock.sleep(ms: 100)
                }
            }
            if found { read += 1 } else { missing.append("\(r.key) (\(outcome))") }
        }
        guard missing.isEmpty, clock.nowMs <= deadline else {
            throw Failure("\(acked + read) of \(tasks.count) of \(batch) committed within \(withinMs)ms; not: \(missing.joined(separator: ", "))")
        }
        return read == 0 ? "\(acked) acknowledged" : "\(acked) acknowledged, \(read) read back committed"
    }

    // MARK: Convergence

    func awaitConverged(withinMs: Int) async throws -> String {
        let deadline = clock.nowMs + withinMs
        var why = ""
        while true {
            var statuses: [NodeStatus] = []
            for n in backend.running.sorted() where !backend.paused.contains(n) {
                if let s = await backend.status(n), s.members.contains(n) || s.learners.contains(n) { statuses.append(s) }
            }
            if let first = statuses.first {
                let same = statuses.allSatisfy {
                    $0.commitIndex == first.commitIndex && $0.appliedIndex == first.appliedIndex && $0.members == first.members
                        && $0.learners == first.learners && $0.digest == first.digest && !$0.snapshotting
                }
                if same {
                    recorder.log("converged applied=\(first.appliedIndex) digest=\(first.digest) nodes=\(statuses.map(\.name).joined(separator: ","))")
                    return "applied \(first.appliedIndex) on \(statuses.map(\.name).joined(separator: ","))"
                }
                why = statuses.map { "\($0.name): commit \($0.commitIndex) applied \($0.appliedIndex) digest \($0.digest)\($0.snapshotting ? " snapshotting" : "")" }.joined(separator: "; ")
                // What the leader knows of the others says where a laggard is stuck.
                if let l = statuses.first(where: { $0.role == "leader" }), let peers = l.peers {
                    why += "; \(l.name) sees " + peers.map { "\($0.0) \($0.1.state) match \($0.1.match) next \($0.1.next)" }.joined(separator: ", ")
                }
            } else {
                why = "no running member answers"
            }
            guard clock.nowMs < deadline else { throw Failure("not converged within \(withinMs)ms: \(why)") }
            await clock.sleep(ms: 100)
        }
    }
}

extension Duration {
    var milliseconds: Int {
        let (s, atto) = components
        return Int(s) * 1000 + Int(atto / 1_000_000_000_000_000)
    }
}
