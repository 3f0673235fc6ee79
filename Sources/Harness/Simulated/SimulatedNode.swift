import Foundation
import Raft
import RaftNodeHost
import RaftNodeMachine
import RaftNodeWire
import RaftStorage

/// How long the work of a node takes in simulated time, from what `make bench` measured on
/// the development machine (README, "Speed"): appends with one fdatasync each ran at 3,795/s
/// and 128 of 128 bytes at 237,370/s (so about 250 µs a sync plus 60 MB/s); a snapshot was
/// written at 32.4 MB/s of state and read back at 153 MB/s, compressed to 64.1 %; a transfer
/// between processes ran at about 400 MB/s.
struct SimulatedRates: Sendable {
    /// A turn of the loop: the 502 µs of server CPU a write cost on three nodes (issue 12's
    /// measurement) is about two turns on each.
    var turnUs: Int64 = 85
    var syncUs: Int64 = 250
    var syncBytesPerSecond: Int64 = 60_000_000
    var snapshotWriteStateBytesPerSecond: Int64 = 32_400_000
    var snapshotReadStateBytesPerSecond: Int64 = 153_000_000
    var compressedFraction = 0.641
    var linkUs: Int64 = 60
    var linkBytesPerSecond: Int64 = 400_000_000
    /// What a node's loop spends on each byte it receives or sends (framing, checksums,
    /// copies): with it, 64 KiB puts run at about the 29 MB/s of the bench's bulk load.
    var cpuBytesPerSecond: Int64 = 150_000_000
    /// What each message costs its receiver's process (its frame through the harness's link
    /// proxy, a wake-up of the loop): killed-during-snapshot's 1,670 chunks of 16 bytes took
    /// 354 ms to install against processes (about 210 µs a chunk, with its answer), and one
    /// client's puts took 0.91 ms each (p50, issue 12's table).
    var messageUs: Int64 = 80
    /// A client's request or answer on its socket.
    var clientUs: Int64 = 40

    func us(_ bytes: Int, perSecond rate: Int64) -> Int64 { Int64(bytes) * 1_000_000 / max(1, rate) }

    /// Writing a snapshot file of `fileBytes` (compressed).
    func snapshotWriteUs(fileBytes: UInt64) -> Int64 {
        2000 + us(Int(Double(fileBytes) / compressedFraction), perSecond: snapshotWriteStateBytesPerSecond)
    }

    func snapshotReadUs(fileBytes: UInt64) -> Int64 {
        1000 + us(Int(Double(fileBytes) / compressedFraction), perSecond: snapshotReadStateBytesPerSecond)
    }
}

/// One simulated raft-node process: the same `NodeMachine` as the process runtime, over the
/// real RaftStorage code on real files in the run directory, with a simulated network and
/// clock. A turn takes the node's inputs, then carries out its outputs; the turn lasts as
/// long as its fsyncs (`SimulatedRates`), and what it sends leaves at the turn's end.
final class SimulatedNode {
    let name: String
    let dataDir: String
    let incarnation: Int
    var machine: NodeMachine
    let storage: NodeStorage
    let events: EventLog
    let nodeLog: NodeLog
    unowned let cluster: SimulatedCluster

    var paused = false
    /// Inputs not yet taken (while paused, or while a turn is under way).
    var inbox: [NodeInput] = []
    var turnScheduled = false
    var busyUntilUs: Int64 = 0
    var wakeAtUs: Int64?
    /// Where this node can send, as the machine last said (`setPeers`): a message to a peer
    /// not in it is dropped, reported once, as the process transport does.
    var addressBook: [NodeID: String] = [:]
    var reportedUnreachable: Set<NodeID> = []
    var receiver: SnapshotReceiver?
    /// When the snapshot being received began to arrive: its install's `ms` counts from
    /// there, as the process runtime's does.
    var receiveStartedUs: Int64 = 0
    /// A restore scheduled to finish; cancelled when the receive is aborted.
    var installing: (meta: SnapshotMetadata, cancelled: Bool)?
    var snapshotChunks = SnapshotChunks()
    /// Clients waiting for answers, by token.
    var clients: [ClientToken: (ClientAnswer?) -> Void] = [:]
    var nextToken: ClientToken = 1
    var stopped = false
    /// When the process died (killed, crashed): what its last turn had not yet sent by then
    /// never leaves.
    var diedAtUs: Int64?
    /// What was durable when the current turn began: a power cut during the turn, before its
    /// fsyncs are done in simulated time, finds the files as they were then.
    var durableAtTurnStart = UnsyncedWrites.Ledger()
    /// The syncs of the current turn: when each is done in simulated time, and what was
    /// durable then.
    var durableDuringTurn: [(atUs: Int64, ledger: UnsyncedWrites.Ledger)] = []
    /// Answers written but not yet read by their clients, with when they leave.
    var leaving: [ClientToken: (atUs: Int64, done: (ClientAnswer?) -> Void)] = [:]

    init(cluster: SimulatedCluster, name: String, dataDir: String, incarnation: Int, settings: NodeSettings, addresses: [NodeID: String], seed: UInt64) throws {
        self.cluster = cluster
        self.name = name
        self.dataDir = dataDir
        self.incarnation = incarnation
        let clock = cluster.unixClock
        storage = try NodeStorage(directory: dataDir, keepArchive: true)
        events = EventLog(path: dataDir + "/events.jsonl", node: name, clock: clock)
        let nodeLog = NodeLog(path: dataDir + "/node.log", clock: clock)
        self.nodeLog = nodeLog
        events.mirror = { nodeLog.write($0) }
        nodeLog.write("raft-node \(name) starting (simulated): data nodes/\(name), peers at sim:\(name)")
        let state = try storage.durableState()
        let store = try StateFiles.restoreLatest(storage)
        var config = NodeMachine.Config(
            name: name, settings: settings.core, tickMs: settings.tickMs, requestTimeoutMs: settings.requestTimeoutMs,
            initialAddresses: addresses)
        // The planted faults, as the process runtime takes them.
        config.ignoreSnapshotAfterRestart = cluster.plantedFaults.contains(.ignoreSnapshotAfterRestart)
        config.answerReadsLocally = cluster.plantedFaults.contains(.staleReads)
        config.writeApplyEvents = true
        addressBook = addresses.filter { $0.key != name }
        machine = NodeMachine(config: config, seed: seed, state: state, store: store, now: cluster.nowMs)
        busyUntilUs = cluster.timeline.nowUs
        takeTurn()
    }

    var rates: SimulatedRates { cluster.rates }

    // MARK: Inputs

    func deliver(_ input: NodeInput) {
        guard !stopped else {
            if case let .client(token, _) = input { finishClient(token, nil) }
            return
        }
        inbox.append(input)
        scheduleTurn()
    }

    func scheduleTurn(at: Int64? = nil) {
        guard !paused, !stopped, !turnScheduled else { return }
        turnScheduled = true
        let when = max(at ?? cluster.timeline.nowUs, busyUntilUs)
        let me = incarnation
        cluster.timeline.schedule(at: when) { [weak self] in
            guard let self, self.incarnation == me else { return }
            self.turnScheduled = false
            self.takeTurn()
        }
    }

    /// A client request; `done` gets the answer, or nil when none will come.
    func request(_ op: ClientOp, done: @escaping (ClientAnswer?) -> Void) -> ClientToken {
        let token = nextToken
        nextToken += 1
        clients[token] = done
        deliver(.client(token, op))
        return token
    }

    func finishClient(_ token: ClientToken, _ answer: ClientAnswer?) {
        guard let done = clients.removeValue(forKey: token) else { return }
        done(answer)
    }

    /// One turn of the node's loop: inputs, the clock, then the outputs.
    func takeTurn() {
        guard !paused, !stopped else { return }
        let startUs = max(cluster.timeline.nowUs, busyUntilUs)
        durableAtTurnStart = UnsyncedWrites.ledger
        durableDuringTurn.removeAll()
        var costUs = rates.turnUs
        let now = Millis(startUs / 1000)
        let inputs = inbox
        inbox.removeAll()
        var bytes = 0
        for input in inputs {
            switch input {
            case let .message(m):
                bytes += SimulatedCluster.approximateSize(m)
                costUs += rates.messageUs
            case let .client(_, .put(key, value)): bytes += key.utf8.count + value.utf8.count
            default: break
            }
        }
        // As the process runtime does: the turn's inputs at once (writes in a row proposed
        // as one batch).
        machine.step(inputs, now: now)
        costUs += rates.us(bytes, perSecond: rates.cpuBytesPerSecond)
        if now >= machine.nextWake { machine.advance(to: now) }
        busyUntilUs = carryOut(startUs: startUs + costUs)
        if machine.stopReason != nil {
            finish()
            return
        }
        scheduleWake()
    }

    func scheduleWake() {
        let at = max(machine.nextWake * 1000, busyUntilUs)
        guard wakeAtUs.map({ at < $0 }) ?? true else { return }
        wakeAtUs = at
        let me = incarnation
        cluster.timeline.schedule(at: at) { [weak self] in
            guard let self, self.incarnation == me, self.wakeAtUs == at else { return }
            self.wakeAtUs = nil
            guard !self.paused, !self.stopped else { return }
            self.takeTurn()
        }
    }

    // MARK: Outputs

    /// Carries out what the machine asks, from `startUs` on: each output leaves when the
    /// fsyncs before it are done in simulated time. Returns when the last is done.
    func carryOut(startUs: Int64) -> Int64 {
        var t = startUs
        while machine.pendingOutputs {
            // The process runtime's plan: a leader's AppendEntries may leave before the sync of
            // the appends before it, and so here it leaves before that sync's time.
            let steps = CarryOutPlan.steps(machine.takeOutputs())
            // When each output that is not a persist leaves, and which follow a sync.
            var times: [Int64] = []
            var afterSync: Set<Int> = []
            var synced = false
            var bytes = 0
            for step in steps {
                switch step {
                case let .persist(action):
                    if case let .appendLog(entries) = action { bytes += entries.reduce(0) { $0 + $1.payload.count + 32 } }
                case .sync:
                    t += rates.syncUs + rates.us(bytes, perSecond: rates.syncBytesPerSecond)
                    bytes = 0
                    synced = true
                case .perform:
                    if synced { afterSync.insert(times.count) }
                    synced = false
                    times.append(t)
                }
            }
            let trailingSync = synced
            var i = 0
            let error = storage.carryOut(steps: steps) { output in
                // The sync before this output is done (for real, and at times[i] in simulated time).
                if afterSync.contains(i) { durableDuringTurn.append((times[i], UnsyncedWrites.ledger)) }
                perform(output, at: times[i])
                i += 1
            }
            if trailingSync { durableDuringTurn.append((t, UnsyncedWrites.ledger)) }
            if let error { machine.step(.storageFailed("\(error)"), now: Millis(t / 1000)) }
        }
        return t
    }

    /// What was durable at `us` (a power cut then): the last sync of the current turn done by
    /// then, else what was durable when it began.
    func durable(at us: Int64) -> UnsyncedWrites.Ledger {
        durableDuringTurn.last { $0.atUs <= us }?.ledger ?? durableAtTurnStart
    }

    func perform(_ output: NodeOutput, at us: Int64) {
        let now = Millis(us / 1000)
        switch output {
        case .persist:
            break
        case let .send(m):
            cluster.send(m, from: self, at: us + rates.us(SimulatedCluster.approximateSize(m), perSecond: rates.cpuBytesPerSecond))
        case let .sendSnapshotChunk(to, term, meta, offset, length, done):
            do {
                let m = try snapshotChunks.message(
                    from: name, to: to, term: term, meta, offset: offset, length: length, done: done, in: storage.snapshots)
                cluster.send(m, from: self, at: us)
            } catch {
                machine.step(.snapshotSendFailed(to: to, meta, reason: "\(error)"), now: now)
            }
        case let .answer(token, answer):
            // Written to the connection at the turn's end; read by the client a moment later,
            // even if the node dies meanwhile (the bytes are in the socket), unless it died
            // before the turn's end.
            guard let done = clients.removeValue(forKey: token) else { return }
            leaving[token] = (us, done)
            cluster.timeline.schedule(at: us + rates.clientUs) { [weak self] in
                guard let self, let l = self.leaving.removeValue(forKey: token) else { return }
                l.done(answer)
            }
        case let .event(event, term):
            if case let .error(what, detail) = event {
                events.write(.error(what: what, detail: relative(detail)), term: term)
            } else {
                events.write(event, term: term)
            }
        case let .note(text):
            nodeLog.write(relative(text))
        case let .takeSnapshot(index, term, configuration, state):
            takeSnapshot(state, index: index, term: term, configuration: configuration, at: us)
        case let .beginSnapshotReceive(_, meta):
            abortReceive()
            do {
                receiver = try storage.snapshots.receive(meta)
                receiveStartedUs = us
            } catch {
                machine.step(.storageFailed("\(error)"), now: now)
            }
        case let .writeSnapshotChunk(_, offset, data):
            do {
                try receiver?.write(at: offset, data)
            } catch {
                machine.step(.storageFailed("\(error)"), now: now)
            }
        case let .installSnapshot(meta):
            guard let r = receiver, r.metadata == meta else {
                abortReceive()
                machine.step(.snapshotRestoreFailed(meta, "no snapshot \(meta) being received"), now: now)
                return
            }
            receiver = nil
            install(r, at: us)
        case .abortSnapshotReceive:
            abortReceive()
        case let .snapshotFilesInUse(inUse):
            snapshotChunks.keep(only: inUse)
        case let .retireSnapshots(newest):
            try? storage.snapshots.retire(olderThan: newest)
        case let .setPeers(addresses):
            for peer in addresses.keys where addressBook[peer] == nil { reportedUnreachable.remove(peer) }
            addressBook = addresses
        }
    }

    /// `text` with the run directory's path taken out of the paths it names (an error's
    /// file): the run directory holds no path of where it was written, so that two runs of a
    /// seed are byte-identical wherever they ran (explore writes in a scratch directory).
    func relative(_ text: String) -> String {
        text.replacingOccurrences(of: cluster.runDirectory + "/", with: "")
    }

    func takeSnapshot(_ state: KeyValueStore, index: LogIndex, term: Term, configuration: Configuration, at us: Int64) {
        let input: NodeInput
        var doneAt = us
        do {
            let meta = try cluster.takeSnapshot(
                state, directory: storage.snapshots.directory, level: storage.snapshots.compressionLevel, index: index, term: term,
                configuration: configuration)
            let took = rates.snapshotWriteUs(fileBytes: meta.size)
            doneAt += took
            input = .snapshotTaken(meta, ms: Int(took / 1000))
        } catch {
            input = .snapshotTakeFailed("\(error)")
        }
        let me = incarnation
        cluster.timeline.schedule(at: doneAt) { [weak self] in
            guard let self, self.incarnation == me else { return }
            self.deliver(input)
        }
    }

    /// The last chunk is in: the restore finishes (in simulated time as long as reading the
    /// file takes), then the file is made durable and the state handed to the machine.
    func install(_ r: SnapshotReceiver, at us: Int64) {
        let took = rates.snapshotReadUs(fileBytes: r.metadata.size)
        installing = (r.metadata, false)
        let me = incarnation
        let meta = r.metadata
        cluster.timeline.schedule(at: us + took) { [weak self] in
            guard let self, self.incarnation == me, let i = self.installing, i.meta == meta else {
                r.abort()
                return
            }
            self.installing = nil
            guard !i.cancelled, !self.stopped else {
                r.abort()
                return
            }
            let input: NodeInput
            do {
                let installed = try r.install()
                let store = try StateFiles.restore(self.storage.snapshots.reader(for: installed))
                let all = (us + took - self.receiveStartedUs) / 1000
                input = .snapshotRestored(
                    installed, store, ms: Int(all),
                    note: "snapshot \(installed.index) (term \(installed.term), \(installed.size) bytes): the last chunk after \((us - self.receiveStartedUs) / 1000) ms, restored \(took / 1000) ms after it; \(all) ms in all (simulated)")
            } catch {
                r.abort()
                input = .snapshotRestoreFailed(meta, "\(error)")
            }
            self.deliver(input)
        }
    }

    func abortReceive() {
        receiver?.abort()
        receiver = nil
        if installing != nil { installing?.cancelled = true }
    }

    // MARK: Ends

    /// The machine stopped (SIGTERM, removal, a storage failure): its last outputs, then the
    /// files are closed and the process is gone.
    func finish() {
        guard !stopped else { return }
        machine.shutdown(now: Millis(max(cluster.timeline.nowUs, busyUntilUs) / 1000))
        busyUntilUs = carryOut(startUs: max(cluster.timeline.nowUs, busyUntilUs))
        close(graceful: true)
        cluster.exited(self)
    }

    /// The process ends: clients waiting on it see their connection close, and so do those
    /// whose answers it had not written yet. Only a process that shuts down (`graceful`)
    /// syncs and closes its log; a killed one just drops its descriptors.
    func close(graceful: Bool) {
        stopped = true
        let now = cluster.timeline.nowUs
        for (token, l) in leaving.sorted(by: { $0.key < $1.key }) where l.atUs > now {
            leaving[token] = nil
            l.done(nil)
        }
        abortReceive()
        if graceful { try? storage.close() }
        events.close()
        nodeLog.close()
        let waiting = clients.keys.sorted()
        for t in waiting { finishClient(t, nil) }
    }
}
