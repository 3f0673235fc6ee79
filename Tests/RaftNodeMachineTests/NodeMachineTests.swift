import Raft
import RaftNodeMachine
import RaftNodeWire
import Testing

/// Node machines joined by a network in memory: every `.send` is delivered at once (unless
/// its receiver is cut off), every persist is taken as done, clients' answers are kept.
/// Time moves only when `tick` says.
struct MachineNet {
    var machines: [NodeID: NodeMachine] = [:]
    var now: Millis = 0
    var cut: Set<NodeID> = []
    var answers: [ClientToken: ClientAnswer] = [:]
    var events: [NodeID: [NodeEvent]] = [:]
    var nextToken: ClientToken = 1
    /// With `autoTake`, each snapshot asked for is taken at once (a file of 10 bytes), and
    /// noted here with the bytes of state it was asked with.
    var autoTake = false
    var takes: [NodeID: [(index: LogIndex, stateBytes: Int)]] = [:]

    init(_ names: [NodeID], requestTimeoutMs: Int = 2000, adjust: (inout NodeSettings) -> Void = { _ in }) {
        let config = Configuration(voters: names, addresses: Dictionary(uniqueKeysWithValues: names.map { ($0, "mem:" + $0) }))
        let boot = SnapshotMetadata(index: 0, term: 0, configuration: config, size: 0)
        var settings = NodeSettings()
        settings.requestTimeoutMs = requestTimeoutMs
        adjust(&settings)
        for (i, n) in names.enumerated() {
            let c = NodeMachine.Config(name: n, settings: settings.core, tickMs: settings.tickMs, requestTimeoutMs: requestTimeoutMs, initialAddresses: [:])
            machines[n] = NodeMachine(config: c, seed: UInt64(i + 1) * 7919, state: DurableState(snapshot: boot), store: KeyValueStore(), now: 0)
        }
        deliver()
    }

    /// Carries out every output until none is left.
    mutating func deliver() {
        var moved = true
        while moved {
            moved = false
            for name in machines.keys.sorted() {
                var m = machines[name]!
                let outputs = m.takeOutputs()
                machines[name] = m
                for o in outputs {
                    moved = true
                    switch o {
                    case let .send(msg):
                        guard !cut.contains(msg.from), !cut.contains(msg.to), var to = machines[msg.to] else { continue }
                        to.step(.message(msg), now: now)
                        machines[msg.to] = to
                    case let .answer(token, a): answers[token] = a
                    case let .event(e, _): events[name, default: []].append(e)
                    case let .takeSnapshot(index, term, configuration, state) where autoTake:
                        takes[name, default: []].append((index, state.byteCount))
                        let meta = SnapshotMetadata(index: index, term: term, configuration: configuration, size: 10)
                        machines[name]!.step(.snapshotTaken(meta, ms: 1), now: now)
                    default: break
                    }
                }
            }
        }
    }

    mutating func tick(ms: Int) {
        for _ in 0..<ms {
            now += 1
            for name in machines.keys.sorted() where machines[name]!.nextWake <= now {
                machines[name]!.advance(to: now)
            }
            deliver()
        }
    }

    var leader: NodeID? { machines.keys.sorted().first { machines[$0]!.core.role == .leader } }

    mutating func request(_ node: NodeID, _ op: ClientOp) -> ClientToken {
        let token = nextToken
        nextToken += 1
        machines[node]!.step(.client(token, op), now: now)
        deliver()
        return token
    }

    mutating func electLeader() throws -> NodeID {
        for _ in 0..<5000 where leader == nil { tick(ms: 1) }
        return try #require(leader)
    }
}

@Suite("Node machine: the node's decisions, without I/O")
struct NodeMachineTests {
    @Test("A put is answered with its index and term once committed and applied; a get reads it")
    func putThenGet() throws {
        var net = MachineNet(["n1", "n2", "n3"])
        let l = try net.electLeader()
        let put = net.request(l, .put(key: "k", value: "v"))
        net.tick(ms: 100)
        guard case let .written(index, term)? = net.answers[put] else { Issue.record("put: \(String(describing: net.answers[put]))"); return }
        #expect(index > 0 && term == net.machines[l]!.core.term)
        let get = net.request(l, .get(key: "k"))
        net.tick(ms: 100)
        // Read by ReadIndex: no entry of its own; answered from the state through the put.
        #expect(net.answers[get] == .read(value: "v", index: index))
        #expect(net.machines[l]!.core.log.lastIndex == index)
        let missing = net.request(l, .get(key: "none"))
        net.tick(ms: 100)
        if case let .read(value, _)? = net.answers[missing] { #expect(value == nil) } else { Issue.record("get of a missing key: \(String(describing: net.answers[missing]))") }
    }

    @Test("A turn's writes in a row are proposed as one batch: one AppendEntries to each follower; each answered with its own index, in order around a read")
    func writesInATurnAreOneBatch() throws {
        var net = MachineNet(["n1", "n2", "n3"])
        let l = try net.electLeader()
        let before = net.machines[l]!.core.log.lastIndex
        var m = net.machines[l]!
        _ = m.takeOutputs()
        let turn: [NodeInput] = [
            .client(101, .put(key: "a", value: "1")), .client(102, .put(key: "b", value: "2")), .client(103, .delete(key: "a")),
            .client(104, .get(key: "b")), .client(105, .put(key: "c", value: "3")),
        ]
        m.step(turn, now: net.now)
        let outputs = m.takeOutputs()
        let appends = outputs.compactMap { o -> [LogIndex]? in
            if case let .persist(.appendLog(entries)) = o { entries.map(\.index) } else { nil }
        }
        let toFollower = outputs.compactMap { o -> Int? in
            if case let .send(msg) = o, msg.to != l, case let .appendEntries(ae) = msg.body { ae.entries.count } else { nil }
        }
        // The three writes before the read in one append; the one after it in another.
        #expect(appends == [[before + 1, before + 2, before + 3], [before + 4]])
        #expect(toFollower.filter { $0 == 3 }.count == 2, "one AppendEntries of the three writes to each follower: \(toFollower)")
        net.machines[l] = m
        // Deliver what the step sent, and run until every request is answered.
        for o in outputs { if case let .send(msg) = o, var to = net.machines[msg.to] { to.step(.message(msg), now: net.now); net.machines[msg.to] = to } }
        net.deliver()
        net.tick(ms: 100)
        #expect(net.answers[101] == .written(index: before + 1, term: m.core.term))
        #expect(net.answers[102] == .written(index: before + 2, term: m.core.term))
        #expect(net.answers[103] == .written(index: before + 3, term: m.core.term))
        #expect(net.answers[105] == .written(index: before + 4, term: m.core.term))
        if case let .read(value, _)? = net.answers[104] { #expect(value == "2") } else { Issue.record("get: \(String(describing: net.answers[104]))") }
    }

    @Test("A snapshot's older files are retired only once the machine has the new one: until then it may offer the older to a peer")
    func olderSnapshotsRetiredAfterTheTake() throws {
        var net = MachineNet(["n1", "n2", "n3"])
        let l = try net.electLeader()
        _ = net.request(l, .put(key: "k", value: "v"))
        net.tick(ms: 100)
        var m = net.machines[l]!
        _ = m.takeOutputs()
        m.step(.client(999, .snapshot), now: net.now)
        let asked = m.takeOutputs()
        let take = asked.compactMap { o -> (LogIndex, Term, Configuration)? in
            if case let .takeSnapshot(index, term, configuration, _) = o { return (index, term, configuration) } else { return nil }
        }
        let (index, term, configuration) = try #require(take.first, "no take asked for: \(asked)")
        #expect(!asked.contains { if case .retireSnapshots = $0 { true } else { false } }, "older files retired before the take ended")
        let meta = SnapshotMetadata(index: index, term: term, configuration: configuration, size: 100)
        m.step(.snapshotTaken(meta, ms: 1), now: net.now)
        let taken = m.takeOutputs()
        let retired = taken.compactMap { o -> SnapshotMetadata? in if case let .retireSnapshots(newest) = o { newest } else { nil } }
        #expect(retired == [meta])
        #expect(m.core.snapshot == meta)
    }

    @Test("Once a snapshot holds snapshot-amortize-from bytes of state, the next waits until as many payload bytes were applied after it (the state's bytes, not its small file's)")
    func snapshotsWaitForAsManyBytesAsTheirState() throws {
        var net = MachineNet(["n1", "n2", "n3"]) {
            $0.snapshotThreshold = 5
            $0.snapshotAmortizeFrom = 1000
        }
        net.autoTake = true
        let l = try net.electLeader()
        for i in 0..<60 {
            _ = net.request(l, .put(key: "k\(i)", value: String(repeating: "x", count: 200)))
            net.tick(ms: 20)
        }
        let takes = net.takes[l] ?? []
        let log = net.machines[l]!.core.log
        func bytes(_ from: LogIndex, _ through: LogIndex) -> Int { log.bytes(from: from, through: through) }
        #expect(takes.count >= 4, "\(takes)")
        #expect(takes.contains { $0.stateBytes >= 1000 }, "\(takes)")
        for (prev, next) in zip(takes, takes.dropFirst()) {
            #expect(next.index - prev.index >= 5)
            guard prev.stateBytes >= 1000 else {
                #expect(next.index - prev.index == 5, "\(prev) -> \(next)")
                continue
            }
            // Waited for the bytes, and no longer: one entry fewer held too few.
            #expect(bytes(prev.index + 1, next.index) >= prev.stateBytes, "\(prev) -> \(next)")
            #expect(next.index - prev.index == 5 || bytes(prev.index + 1, next.index - 1) < prev.stateBytes, "\(prev) -> \(next)")
        }
    }

    @Test("At its start, a node's config event calls the log's latest configuration committed only when the commit index it knows reaches it")
    func startConfigCommittedOnlyWhenKnown() throws {
        let names: [NodeID] = ["n1", "n2", "n3"]
        let first = Configuration(voters: names, addresses: Dictionary(uniqueKeysWithValues: names.map { ($0, "mem:" + $0) }))
        let second = Configuration(voters: ["n1", "n2"], addresses: first.addresses)
        let boot = SnapshotMetadata(index: 0, term: 0, configuration: first, size: 0)
        let settings = NodeSettings()
        func startEvents(_ state: DurableState) -> [NodeEvent] {
            let c = NodeMachine.Config(name: "n1", settings: settings.core, tickMs: settings.tickMs, requestTimeoutMs: 1000, initialAddresses: [:])
            var m = NodeMachine(config: c, seed: 1, state: state, store: KeyValueStore(), now: 0)
            return m.takeOutputs().compactMap { if case let .event(e, _) = $0 { e } else { nil } }.filter { if case .config = $0 { true } else { false } }
        }
        // Only the snapshot's configuration: committed.
        #expect(startEvents(DurableState(hardState: HardState(term: 1), snapshot: boot)) == [.config(index: 0, members: names, learners: [], committed: true)])
        // A later configuration entry in the log, past the commit index known at the start
        // (the snapshot's): in force, but not known to be committed.
        let log = RaftLog(entries: [Entry(index: 1, term: 1, type: .config, payload: second.encoded())])
        #expect(startEvents(DurableState(hardState: HardState(term: 1), snapshot: boot, log: log)) == [.config(index: 1, members: ["n1", "n2"], learners: [], committed: false)])
    }

    @Test("A follower refuses a put at once, not-leader, naming the leader")
    func followerRefuses() throws {
        var net = MachineNet(["n1", "n2", "n3"])
        let l = try net.electLeader()
        let f = net.machines.keys.sorted().first { $0 != l }!
        let t = net.request(f, .put(key: "k", value: "v"))
        #expect(net.answers[t] == .failed(.notLeader, leader: l))
    }

    @Test("A get waits for a round a majority answers, adds no log entry, and a leader cut off answers it leadership-lost when it steps down")
    func getsByReadIndex() throws {
        var net = MachineNet(["n1", "n2", "n3"], requestTimeoutMs: 10_000)
        let l = try net.electLeader()
        let put = net.request(l, .put(key: "k", value: "v1"))
        net.tick(ms: 100)
        guard case let .written(index, _)? = net.answers[put] else { Issue.record("put: \(String(describing: net.answers[put]))"); return }
        let last = net.machines[l]!.core.log.lastIndex
        // The others cut off: no round is answered, so no answer yet.
        net.cut = Set(net.machines.keys.filter { $0 != l })
        let get = net.request(l, .get(key: "k"))
        net.tick(ms: 50)
        #expect(net.answers[get] == nil, "answered without a majority: \(String(describing: net.answers[get]))")
        #expect(net.machines[l]!.core.log.lastIndex == last)
        // CheckQuorum makes it step down: the read is answered, leadership-lost.
        net.tick(ms: 1000)
        #expect(net.machines[l]!.core.role != .leader)
        if case .failed(.leadershipLost, _, _)? = net.answers[get] {} else { Issue.record("get: \(String(describing: net.answers[get]))") }
        // Healed, a leader again: a get reads the value, at the index of the state it saw.
        net.cut = []
        let l2 = try net.electLeader()
        net.tick(ms: 300)
        let again = net.request(l2, .get(key: "k"))
        net.tick(ms: 100)
        guard case let .read(value, at)? = net.answers[again] else { Issue.record("get: \(String(describing: net.answers[again]))"); return }
        #expect(value == "v1" && at >= index)
    }

    @Test("A put that cannot commit is answered timeout at its deadline, and not before")
    func deadline() throws {
        var net = MachineNet(["n1", "n2", "n3"], requestTimeoutMs: 500)
        let l = try net.electLeader()
        // Cut both followers off: nothing commits, and the leader (with CheckQuorum) steps
        // down after an election timeout; either way the request is answered.
        for n in net.machines.keys where n != l { net.cut.insert(n) }
        let t = net.request(l, .put(key: "k", value: "v"))
        net.tick(ms: 100)
        #expect(net.answers[t] == nil, "answered before anything could happen: \(String(describing: net.answers[t]))")
        net.tick(ms: 1000)
        let a = try #require(net.answers[t], "never answered")
        guard case let .failed(error, _, _) = a else { Issue.record("\(a)"); return }
        #expect(error == .timeout || error == .leadershipLost, "\(a)")
    }

    @Test("A leader that stops answers every request it holds: writes leadership-lost, snapshots shutting-down")
    func shutdownAnswersEverything() throws {
        var net = MachineNet(["n1", "n2", "n3"])
        let l = try net.electLeader()
        for n in net.machines.keys where n != l { net.cut.insert(n) }
        let puts = (0..<5).map { net.request(l, .put(key: "k\($0)", value: "v")) }
        let change = net.request(l, .remove(node: net.machines.keys.sorted().first { $0 != l }!))
        net.machines[l]!.step(.stop(reason: "SIGTERM"), now: net.now)
        #expect(net.machines[l]!.stopReason == "SIGTERM")
        net.machines[l]!.shutdown(now: net.now)
        net.deliver()
        for t in puts + [change] {
            guard case let .failed(error, _, _)? = net.answers[t] else { Issue.record("\(t): \(String(describing: net.answers[t]))"); continue }
            #expect(error == .leadershipLost)
        }
        #expect(net.events[l]?.last == .stop(reason: "SIGTERM"))
        // After the stop, a request is answered shutting-down: nothing was done for it.
        let late = net.request(l, .put(key: "late", value: "v"))
        #expect(net.answers[late] == .failed(.shuttingDown))
    }

    @Test("A leader's status names each other member's progress (SPEC section 5); a follower's has none")
    func status() throws {
        var net = MachineNet(["n1", "n2", "n3"])
        let l = try net.electLeader()
        _ = net.request(l, .put(key: "k", value: "v"))
        net.tick(ms: 100)
        let s = net.machines[l]!.status()
        #expect(s.role == "leader" && s.leader == l && s.members == ["n1", "n2", "n3"])
        let peers = try #require(s.peers)
        #expect(peers.map(\.0) == ["n1", "n2", "n3"].filter { $0 != l })
        for (_, p) in peers { #expect(p.state == "replicate" && p.match == s.lastIndex) }
        let f = ["n1", "n2", "n3"].first { $0 != l }!
        #expect(net.machines[f]!.status().peers == nil)
        #expect(net.machines[f]!.status().digest == s.digest)
    }

    @Test("The same inputs at the same times give the same outputs: the machine is deterministic")
    func deterministic() throws {
        func run() throws -> [String] {
            var net = MachineNet(["n1", "n2", "n3"])
            let l = try net.electLeader()
            for i in 0..<20 { _ = net.request(l, .put(key: "k\(i % 3)", value: "v\(i)")) }
            net.tick(ms: 300)
            return net.machines.keys.sorted().flatMap { n in (net.events[n] ?? []).map { "\(n) \($0.kind) \($0.fields.map { "\($0.0)=\($0.1.serialized)" })" } }
        }
        #expect(try run() == run())
    }
}
