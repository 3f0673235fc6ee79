import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Raft
import RaftStorage
import RaftTransport

/// What reaches the node's loop from other threads.
enum Input: Sendable {
    case message(Message)
    case client(ClientRequest)
    case snapshotTaken(SnapshotMetadata, ms: Int)
    case snapshotTakeFailed(String)
    case snapshotRestored(SnapshotMetadata, KeyValueStore, ms: Int, note: String)
    case snapshotRestoreFailed(SnapshotMetadata, String)
    case error(what: String, detail: String)
    case stop(reason: String)
}

/// A queue of inputs with a wake-up, shared by the NIO threads and the loop.
final class Mailbox: Sendable {
    private let inputs = NIOLockedValueBox<(queued: [Input], closed: Bool)>(([], false))
    private let wake = DispatchSemaphore(value: 0)

    /// Queues `input`; false once the mailbox is closed (the loop has ended).
    @discardableResult
    func post(_ input: Input) -> Bool {
        let accepted = inputs.withLockedValue { box -> Bool in
            guard !box.closed else { return false }
            box.queued.append(input)
            return true
        }
        if accepted { wake.signal() }
        return accepted
    }

    /// Waits until something is posted or `deadline`, then takes everything.
    func take(waitingUntil deadline: DispatchTime) -> [Input] {
        _ = wake.wait(timeout: deadline)
        return inputs.withLockedValue { box in
            defer { box.queued.removeAll(keepingCapacity: true) }
            return box.queued
        }
    }

    /// Refuses every later post and returns what is still queued.
    func close() -> [Input] {
        inputs.withLockedValue { box in
            box.closed = true
            defer { box.queued.removeAll() }
            return box.queued
        }
    }
}

/// One member of a cluster: starts the transport and the client socket, then runs the loop
/// on a thread of its own until it is stopped (SIGTERM), removed, or its storage fails.
public enum NodeRuntime {
    /// Runs a node to its end; returns the process exit code.
    public static func run(_ options: NodeOptions) async throws -> Int32 {
        let mailbox = Mailbox()
        let known = NIOLockedValueBox<Set<NodeID>?>(nil)
        let group = MultiThreadedEventLoopGroup.singleton
        // Clients on a thread of their own: parsing a burst of large request lines must not
        // hold up the peer connections (a heartbeat late by 200 ms is an election).
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Open the files first: a damaged data dir refuses to start, naming file and offset.
        let storage = try NodeStorage(directory: options.dataDir)
        if try storage.durableState().snapshot == nil && storage.log.log.lastIndex == 0 && !options.join {
            guard !options.initialMembers.isEmpty else {
                throw NodeError("\(options.dataDir) holds no state: give the first configuration with --member, or --join to wait to be added")
            }
            let voters = Array(options.initialMembers.keys)
            guard voters.contains(options.name) else {
                throw NodeError("the first configuration (\(voters.sorted().joined(separator: ","))) must include this node, \(options.name)")
            }
            _ = try storage.snapshots.bootstrap(Configuration(voters: voters, addresses: options.initialMembers))
        }
        try storage.close()

        let transport = PeerTransport(
            name: options.name, clusterID: options.clusterID, listen: options.peerAddress, group: group,
            onMessage: { mailbox.post(.message($0)) },
            onError: { what, detail in mailbox.post(.error(what: what, detail: detail)) },
            isKnownPeer: { name in known.withLockedValue { set in set.map { $0.contains(name) } ?? true } })
        try await transport.start()
        let server: ClientServer
        do {
            server = try await ClientServer.start(
                path: options.clientSocket, group: clientGroup,
                submit: { request in
                    // Read after the loop has ended: nothing will carry it out.
                    if !mailbox.post(.client(request)) { request.connection.fail(request.id, "shutting-down") }
                },
                onError: { what, detail in mailbox.post(.error(what: what, detail: detail)) })
        } catch {
            await transport.shutdown()
            try? await clientGroup.shutdownGracefully()
            throw error
        }
        installSignalHandlers(mailbox)
        if options.exitOnStdinClose {
            Thread.detachNewThread {
                var byte: UInt8 = 0
                while read(0, &byte, 1) > 0 {}
                mailbox.post(.stop(reason: "stdin closed"))
            }
        }
        let code: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread {
                let exit: Int32
                do {
                    let loop = try NodeLoop(options: options, mailbox: mailbox, transport: transport, known: known)
                    exit = loop.run()
                } catch {
                    FileHandle.standardError.write(Data("raft-node: \(error)\n".utf8))
                    exit = 1
                }
                continuation.resume(returning: exit)
            }
            thread.name = "raft-node loop"
            thread.start()
        }
        // The last answers were written from the loop's thread; each connection's event loop
        // sends them. Let every event loop run what was queued before the process exits.
        for loop in clientGroup.makeIterator() { try? await loop.submit {}.get() }
        await server.close()
        try? await clientGroup.shutdownGracefully()
        await transport.shutdown()
        unlink(options.clientSocket)
        return code
    }

    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    private static func installSignalHandlers(_ mailbox: Mailbox) {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { mailbox.post(.stop(reason: sig == SIGTERM ? "SIGTERM" : "SIGINT")) }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// The loop: everything of the node that changes lives here, on one thread.
final class NodeLoop {
    let options: NodeOptions
    let mailbox: Mailbox
    let transport: PeerTransport
    let known: NIOLockedValueBox<Set<NodeID>?>
    let storage: NodeStorage
    let events: EventLog
    let nodeLog: NodeLog
    var core: RaftCore
    var store = KeyValueStore()
    var stopReason: String?
    var exitCode: Int32 = 0

    // Client requests waiting for their entries.
    struct PendingWrite {
        var term: Term
        var request: ClientRequest
        var deadline: DispatchTime
    }
    var pendingWrites: [LogIndex: PendingWrite] = [:]
    struct PendingChange {
        var node: NodeID
        var adding: Bool
        var index: LogIndex
        var request: ClientRequest
        var deadline: DispatchTime
    }
    var pendingChanges: [PendingChange] = []
    var pendingSnapshots: [(index: LogIndex, request: ClientRequest, deadline: DispatchTime)] = []

    // Snapshot work.
    var openSnapshotFiles: [LogIndex: SnapshotFile] = [:]
    var sendStarted: [NodeID: DispatchTime] = [:]
    /// The snapshot being received, restored as it arrives.
    var restoring: SnapshotRestore?
    /// A restore told to install; it posts its outcome.
    var installing: SnapshotRestore?
    var snapshotTakeStarted = DispatchTime.now()
    /// Every peer address learned, from `--member` and from configurations.
    var addressBook: [NodeID: String]

    // The commit event, at most one a heartbeat interval.
    var lastCommitEvent = DispatchTime.now()
    var commitToReport: LogIndex?
    /// When a message of the leader last reached the loop (for node.log when we campaign).
    var lastFromLeader: DispatchTime?
    /// Messages the transport dropped for each peer (its queue was full), as last logged.
    var droppedReported: [NodeID: Int] = [:]
    /// Peers a leader has said in node.log it has not heard from (until heard again).
    var silentPeers: Set<NodeID> = []
    /// This process started on existing data (a log or a snapshot past the bootstrap one).
    var restartedOnData = false
    let startedAt = DispatchTime.now()
    /// When the first entries (or snapshot offer or chunk) from a leader arrived.
    var firstEntriesAt: DispatchTime?

    init(options: NodeOptions, mailbox: Mailbox, transport: PeerTransport, known: NIOLockedValueBox<Set<NodeID>?>) throws {
        self.options = options
        self.mailbox = mailbox
        self.transport = transport
        self.known = known
        addressBook = options.initialMembers
        // Segments freed by a compaction are unlinked off the loop: hundreds of megabytes of
        // them took 400 ms, with no heartbeat sent meanwhile.
        storage = try NodeStorage(directory: options.dataDir, logOptions: .init(removeInBackground: true))
        events = EventLog(path: options.dataDir + "/events.jsonl", node: options.name)
        let nodeLog = NodeLog(path: options.dataDir + "/node.log")
        self.nodeLog = nodeLog
        events.mirror = { nodeLog.write($0) }
        nodeLog.write("raft-node \(options.name) starting: data \(options.dataDir), peers on \(options.peerAddress), clients on \(options.clientSocket)")
        let state = try storage.durableState()
        if let snap = state.snapshot, snap.index > 0 {
            store = try Self.restore(storage.snapshots.reader(for: snap))
        }
        core = RaftCore(id: options.name, settings: options.settings, seed: UInt64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds), state: state)
        restartedOnData = state.log.lastIndex > 0 || (state.snapshot?.index ?? 0) > 0
        if let fault = FaultSwitch.active { nodeLog.write("planted fault \(fault.rawValue) is on (a -DRAFT_FAULTS build, RAFT_FAULT set)") }
        events.write("start", term: core.term, [
            ("lastIndex", .int(Int64(core.log.lastIndex))), ("commitIndex", .int(Int64(core.commitIndex))),
            ("snapshotIndex", .int(Int64(core.snapshot?.index ?? 0))),
        ])
        if !core.configuration.isEmpty {
            events.write("config", term: core.term, configFields(core.configurationIndex, core.configuration, committed: true))
        }
        updatePeers()
    }

    static func restore(_ reader: SnapshotReader) throws -> KeyValueStore {
        var restorer = KeyValueRestorer()
        try reader.forEachPiece { try restorer.feed($0) }
        return try restorer.finish()
    }

    func run() -> Int32 {
        let tick = UInt64(options.tickMs) * 1_000_000
        var nextTick = DispatchTime.now().uptimeNanoseconds + tick
        while stopReason == nil {
            let inputs = mailbox.take(waitingUntil: DispatchTime(uptimeNanoseconds: nextTick))
            let busy = DispatchTime.now()
            defer { reportSlowIteration(since: busy, inputs: inputs.count) }
            for input in inputs {
                if stopReason != nil {
                    refuse(input)
                } else {
                    handle(input)
                }
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= nextTick {
                // Every tick that fell due, so that a turn made long by an fsync does not
                // slow the clock (a leader ticking once a 40 ms turn would send heartbeats
                // every 200 ms, and its followers would call elections). At most a
                // heartbeat interval's worth at once: the inputs just handled reset the
                // election timer, and a longer burst after a stall of this node's own would
                // call an election for nothing.
                let due = (now - nextTick) / tick + 1
                for _ in 0..<min(due, UInt64(options.settings.heartbeatTicks)) { core.tick() }
                nextTick += due * tick
                housekeeping()
            }
            carryOut()
        }
        shutdown()
        return exitCode
    }

    // MARK: Inputs

    func handle(_ input: Input) {
        switch input {
        case let .message(m):
            if m.from == core.leader { lastFromLeader = .now() }
            if firstEntriesAt == nil {
                switch m.body {
                case .appendEntries, .snapshotRequest, .snapshotRecoveryRequest:
                    firstEntriesAt = .now()
                    nodeLog.write("first \(m.body.kindName) from \(m.from) \(Self.ms(since: startedAt)) ms after the start")
                default: break
                }
            }
            if restartedOnData, FaultSwitch.isOn(.ignoreSnapshotAfterRestart), case .snapshotRequest = m.body { return }
            core.step(m)
        case let .client(request):
            handleClient(request)
        case let .snapshotTaken(meta, ms):
            events.write("snapshot-taken", term: core.term, [
                ("index", .int(Int64(meta.index))), ("snapshotTerm", .int(Int64(meta.term))), ("bytes", .int(Int64(meta.size))), ("ms", .int(Int64(ms))),
            ])
            core.snapshotTaken(meta)
            for p in pendingSnapshots where p.index <= meta.index {
                p.request.connection.answer([("id", p.request.id), ("ok", .bool(true)), ("index", .int(Int64(meta.index)))])
            }
            pendingSnapshots.removeAll { $0.index <= meta.index }
            pruneSnapshotFiles()
            requestSnapshotForWaitingClients()
        case let .snapshotTakeFailed(reason):
            core.snapshotFailed(nil, reason: reason)
            requestSnapshotForWaitingClients()
        case let .snapshotRestored(meta, restored, ms, note):
            let from = installing?.from ?? ""
            installing = nil
            nodeLog.write(note)
            // The core says whether it still waits for this install; only then is the state
            // ours (the entries after it are applied onto it when the actions are carried out).
            guard core.snapshotInstalled(meta) else {
                nodeLog.write("snapshot \(meta.index) restored but no longer awaited; its state is discarded")
                return
            }
            store = restored
            events.write("snapshot-installed", term: core.term, [
                ("from", .string(from)), ("index", .int(Int64(meta.index))), ("snapshotTerm", .int(Int64(meta.term))),
                ("bytes", .int(Int64(meta.size))), ("ms", .int(Int64(ms))),
            ])
        case let .snapshotRestoreFailed(meta, reason):
            installing = nil
            core.snapshotFailed(meta, reason: reason)
        case let .error(what, detail):
            events.write("error", term: core.term, [("what", .string(what)), ("detail", .string(detail))])
        case let .stop(reason):
            stopReason = reason
        }
    }

    func handleClient(_ request: ClientRequest) {
        let deadline = DispatchTime.now() + .milliseconds(options.requestTimeoutMs)
        func notLeader() {
            request.connection.fail(request.id, "not-leader", core.leader.map { [("leader", .string($0))] } ?? [])
        }
        switch request.op {
        case .put, .delete, .get:
            let command: Command
            switch request.op {
            case let .put(key, value): command = .put(key: key, value: value)
            case let .delete(key): command = .delete(key: key)
            case let .get(key): command = .get(key: key)
            default: return
            }
            switch core.propose([command.encoded()]) {
            case let .success((index, term)):
                pendingWrites[index] = PendingWrite(term: term, request: request, deadline: deadline)
            case .failure:
                notLeader()
            }
        case .status:
            request.connection.answer(statusFields(request.id))
        case .snapshot:
            let index = core.requestSnapshot()
            if index <= (core.snapshot?.index ?? 0) {
                request.connection.answer([("id", request.id), ("ok", .bool(true)), ("index", .int(Int64(index)))])
            } else {
                pendingSnapshots.append((index, request, deadline))
            }
        case let .add(node, address):
            propose(.addLearner(node, address: address, promote: true), node: node, adding: true, request, deadline)
        case let .remove(node):
            propose(.remove(node), node: node, adding: false, request, deadline)
        }
    }

    /// A `snapshot` request that came while another snapshot was being taken (one the
    /// threshold asked for, at a lower index) is answered by none yet: ask for the next one
    /// now, or it would wait for the threshold and time out.
    func requestSnapshotForWaitingClients() {
        guard !pendingSnapshots.isEmpty else { return }
        _ = core.requestSnapshot()
    }

    func propose(_ change: ConfigurationChange, node: NodeID, adding: Bool, _ request: ClientRequest, _ deadline: DispatchTime) {
        switch core.proposeChange(change) {
        case let .success((index, _)):
            pendingChanges.append(PendingChange(node: node, adding: adding, index: index, request: request, deadline: deadline))
        case .failure(.notLeader(let leader)):
            request.connection.fail(request.id, "not-leader", leader.map { [("leader", .string($0))] } ?? [])
        case .failure(.configChangeInProgress), .failure(.leaderNotReady):
            request.connection.fail(request.id, "config-change-in-progress")
        case .failure(.invalidChange(let e)):
            request.connection.fail(request.id, "bad-request", [("detail", .string(e.description))])
        }
    }

    func statusFields(_ id: JSONValue) -> [(String, JSONValue)] {
        let c = core.configuration
        return [
            ("id", id), ("ok", .bool(true)), ("name", .string(options.name)), ("role", .string(roleName(core.role))),
            ("term", .int(Int64(core.term))), ("leader", core.leader.map { .string($0) } ?? .null),
            ("commitIndex", .int(Int64(core.commitIndex))), ("appliedIndex", .int(Int64(core.appliedIndex))),
            ("lastIndex", .int(Int64(core.log.lastIndex))), ("snapshotIndex", .int(Int64(core.snapshot?.index ?? 0))),
            ("members", .strings(c.voters)), ("learners", .strings(c.learners)), ("configIndex", .int(Int64(core.configurationIndex))),
            ("digest", .string(store.digestHex)),
            ("snapshotting", .bool(core.isReceivingSnapshot || core.progress.values.contains { $0.state == .snapshot })),
        ] + (core.role == .leader ? [("peers", peersField())] : [])
    }

    /// The leader's view of each other member and learner (SPEC section 5), by name.
    func peersField() -> JSONValue {
        .object(core.progress.keys.sorted().map { peer in
            let pr = core.progress[peer]!
            var fields: [(String, JSONValue)] = [
                ("state", .string(pr.state.rawValue)), ("match", .int(Int64(pr.match))), ("next", .int(Int64(pr.next))),
                ("lastHeardMs", .int(Int64(pr.ticksSinceHeard(at: core.ticks)) * Int64(options.tickMs))),
            ]
            if pr.state == .snapshot, let t = pr.transfer {
                fields += [
                    ("index", .int(Int64(t.snapshot.index))), ("offset", .int(Int64(t.ackedOffset))), ("bytes", .int(Int64(t.snapshot.size))),
                    ("accepted", .bool(t.accepted)), ("installing", .bool(t.installing)),
                ]
            }
            return (peer, .object(fields))
        })
    }

    func roleName(_ role: Role) -> String { role == .preCandidate ? "candidate" : role.rawValue }

    // MARK: Actions

    /// Carries out the core's actions, persisting first and syncing once before anything
    /// that depends on it leaves the node.
    func carryOut() {
        while !core.pendingActionsIsEmpty {
            var unsynced = false
            for action in core.takeActions() {
                do {
                    if try storage.persist(action) {
                        unsynced = true
                        continue
                    }
                    if unsynced {
                        try storage.sync()
                        unsynced = false
                    }
                    try perform(action)
                } catch {
                    storageFailed(error)
                    return
                }
            }
            do {
                if unsynced { try storage.sync() }
            } catch {
                storageFailed(error)
                return
            }
        }
    }

    func storageFailed(_ error: any Error) {
        events.write("error", term: core.term, [("what", .string("storage")), ("detail", .string("\(error)"))])
        FileHandle.standardError.write(Data("raft-node: storage failed: \(error)\n".utf8))
        nodeLog.write("storage failed: \(error)")
        stopReason = "storage failed"
        exitCode = 1
    }

    func perform(_ action: Action) throws {
        switch action {
        case .saveHardState, .appendLog, .truncateLog, .compactLog:
            break  // persisted above
        case let .send(m):
            transport.send(m)
        case let .sendSnapshotChunk(to, term, meta, offset, length, done):
            do {
                let file = try openSnapshotFiles[meta.index] ?? storage.snapshots.openFile(meta)
                openSnapshotFiles[meta.index] = file
                let data = try file.read(offset: offset, length: length)
                transport.send(Message(from: options.name, to: to, term: term, body: .snapshotRecoveryRequest(
                    SnapshotRecoveryRequest(index: meta.index, snapshotTerm: meta.term, offset: offset, data: data, done: done))))
            } catch {
                core.snapshotSendFailed(to: to, meta, reason: "\(error)")
            }
        case let .apply(entries):
            apply(entries)
        case let .takeSnapshot(index, term, configuration):
            takeSnapshot(index: index, term: term, configuration: configuration)
        case let .beginSnapshotReceive(from, meta):
            abortSnapshotReceive()
            let r = try storage.snapshots.receive(meta)
            do {
                restoring = try SnapshotRestore(receiving: r, from: from, mailbox: mailbox)
            } catch {
                r.abort()
                core.snapshotFailed(meta, reason: "cannot follow the snapshot being received: \(error)")
            }
        case let .writeSnapshotChunk(_, offset, data):
            try restoring?.write(at: offset, data)
        case let .installSnapshot(meta):
            installSnapshot(meta)
        case .abortSnapshotReceive:
            abortSnapshotReceive()
        case let .observe(o):
            observe(o)
        }
    }

    func apply(_ entries: [Entry]) {
        for e in entries {
            var getAnswer: String?? = nil
            if e.type == .command {
                do {
                    let command = try Command(decoding: e.payload)
                    command.apply(to: &store)
                    if case let .get(key) = command { getAnswer = .some(store[key]) }
                } catch {
                    events.write("error", term: core.term, [("what", .string("apply")), ("detail", .string("entry \(e.index): \(error)"))])
                }
            }
            guard let p = pendingWrites.removeValue(forKey: e.index) else { continue }
            if p.term != e.term {
                // Another leader's entry took this index. The request itself may still be
                // committed elsewhere (a leader of a later term can carry it): unknown.
                p.request.connection.fail(p.request.id, "leadership-lost", leaderHint)
            } else if let value = getAnswer {
                p.request.connection.answer([
                    ("id", p.request.id), ("ok", .bool(true)), ("value", value.map { .string($0) } ?? .null), ("index", .int(Int64(e.index))),
                ])
            } else {
                p.request.connection.answer([("id", p.request.id), ("ok", .bool(true)), ("index", .int(Int64(e.index))), ("term", .int(Int64(e.term)))])
            }
        }
    }

    func takeSnapshot(index: LogIndex, term: Term, configuration: Configuration) {
        let copy = store  // a value: streamed on another thread while writes go on here
        let directory = storage.snapshots.directory
        let mailbox = self.mailbox
        snapshotTakeStarted = .now()
        let started = snapshotTakeStarted
        let level = storage.snapshots.compressionLevel
        Thread.detachNewThread {
            do {
                let meta = try Self.writeSnapshot(copy, directory: directory, level: level, index: index, term: term, configuration: configuration)
                mailbox.post(.snapshotTaken(meta, ms: Self.ms(since: started)))
            } catch {
                mailbox.post(.snapshotTakeFailed("\(error)"))
            }
        }
    }

    /// Writes `state` as the snapshot at `index` into `directory`, durably, on the caller's
    /// thread. It opens no `SnapshotStore`: opening one deletes every temporary file, and a
    /// snapshot being received from the leader is one.
    static func writeSnapshot(
        _ state: KeyValueStore, directory: String, level: Int32, index: LogIndex, term: Term, configuration: Configuration
    ) throws -> SnapshotMetadata {
        let writer = try SnapshotStore.create(in: directory, index: index, term: term, configuration: configuration, compressionLevel: level)
        do {
            try state.serialize { try writer.write($0) }
            return try writer.finish()
        } catch {
            writer.cancel()
            throw error
        }
    }

    /// Every chunk is written: the restore that followed the transfer finishes, checks,
    /// makes the file durable and posts `.snapshotRestored` (or `.snapshotRestoreFailed`).
    func installSnapshot(_ meta: SnapshotMetadata) {
        guard let restore = restoring, restore.metadata == meta else {
            abortSnapshotReceive()
            core.snapshotFailed(meta, reason: "no snapshot \(meta) being received")
            return
        }
        restoring = nil
        installing = restore
        restore.install()
    }

    func abortSnapshotReceive() {
        restoring?.cancel()
        restoring = nil
    }

    static func ms(since start: DispatchTime) -> Int {
        Int((DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000)
    }

    /// Closes snapshot files no transfer needs any more.
    func pruneSnapshotFiles() {
        let inUse = Set(core.progress.values.compactMap { $0.transfer?.snapshot.index })
        for index in openSnapshotFiles.keys where !inUse.contains(index) {
            openSnapshotFiles[index] = nil
        }
    }

    // MARK: Observations -> events.jsonl

    func configFields(_ index: LogIndex, _ c: Configuration, committed: Bool) -> [(String, JSONValue)] {
        [("index", .int(Int64(index))), ("members", .strings(c.voters)), ("learners", .strings(c.learners)), ("phase", .string(committed ? "committed" : "appended"))]
    }

    func observe(_ o: Observation) {
        switch o {
        case let .role(role, _, term):
            events.write("role", term: term, [("role", .string(roleName(role)))] + (role == .preCandidate ? [("preVote", .bool(true))] : []))
            if role != .leader { answerLeadershipLost() }
            if role == .preCandidate || role == .candidate {
                nodeLog.write("campaigning: " + (lastFromLeader.map { "the last message of a leader reached the loop \(Self.ms(since: $0)) ms ago" } ?? "no leader heard from since the start"))
            }
        case let .vote(candidate, term):
            events.write("vote", term: term, [("for", .string(candidate))])
        case let .truncate(from):
            events.write("truncate", term: core.term, [("from", .int(Int64(from)))])
        case let .compact(through):
            events.write("compact", term: core.term, [("through", .int(Int64(through)))])
        case let .commit(index):
            commitToReport = index
        case let .config(index, c, committed):
            events.write("config", term: core.term, configFields(index, c, committed: committed))
            updatePeers()
            if committed { answerConfigChanges(index, c) }
        case let .snapshotSendStarted(to, _):
            sendStarted[to] = .now()
        case let .snapshotSent(to, meta):
            let ms = sendStarted.removeValue(forKey: to).map { Self.ms(since: $0) } ?? 0
            events.write("snapshot-sent", term: core.term, [
                ("to", .string(to)), ("index", .int(Int64(meta.index))), ("snapshotTerm", .int(Int64(meta.term))),
                ("bytes", .int(Int64(meta.size))), ("ms", .int(Int64(ms))),
            ])
            pruneSnapshotFiles()
        case let .snapshotAbandoned(to, meta, offset, reason):
            sendStarted[to] = nil
            events.write("snapshot-abandoned", term: core.term, [
                ("to", .string(to)), ("index", .int(Int64(meta.index))), ("offset", .int(Int64(offset))), ("reason", .string(reason)),
            ])
            pruneSnapshotFiles()
        case .snapshotInstalled:
            break  // written when the state is restored, with the time it took
        case .removed:
            stopReason = "removed"
        case let .error(what, detail):
            events.write("error", term: core.term, [("what", .string(what)), ("detail", .string(detail))])
        }
    }

    func answerConfigChanges(_ index: LogIndex, _ c: Configuration) {
        pendingChanges.removeAll { p in
            guard index >= p.index else { return false }
            let done = p.adding ? c.isVoter(p.node) : !c.isMember(p.node)
            if done {
                p.request.connection.answer([("id", p.request.id), ("ok", .bool(true)), ("index", .int(Int64(index)))])
            } else if p.adding && !c.isMember(p.node) {
                p.request.connection.fail(p.request.id, "not-leader", [("detail", .string("the change was overwritten"))])
                return true
            }
            return done
        }
    }

    /// The leader this node believes in, for an answer's `leader` field.
    var leaderHint: [(String, JSONValue)] { core.leader.map { [("leader", .string($0))] } ?? [] }

    /// This node stopped leading (or stops): every request it accepted as leader and has not
    /// answered may or may not commit, and nothing here will learn which. Answered now,
    /// `leadership-lost`, rather than at its deadline.
    func answerLeadershipLost() {
        for p in pendingWrites.values { p.request.connection.fail(p.request.id, "leadership-lost", leaderHint) }
        pendingWrites.removeAll()
        for p in pendingChanges { p.request.connection.fail(p.request.id, "leadership-lost", leaderHint) }
        pendingChanges.removeAll()
    }

    /// Keeps the transport's address book and the set of known senders in step with the
    /// newest configuration. A node with no configuration yet (waiting to be added) accepts
    /// any sender of its cluster.
    ///
    /// Addresses are only ever added or updated, never dropped: a member being removed must
    /// still hear the answers that commit its removal, and a node waiting to be added must
    /// reach the leader before it holds any configuration (`--member` seeds the book then).
    func updatePeers() {
        let c = core.latestConfiguration
        addressBook.merge(c.addresses) { _, new in new }
        var addresses = addressBook
        addresses[options.name] = nil
        transport.setPeers(addresses)
        let members = Set(addressBook.keys)
        known.withLockedValue { $0 = c.isEmpty ? nil : members }
    }

    // MARK: Time

    func housekeeping() {
        let now = DispatchTime.now()
        if let c = commitToReport,
            now.uptimeNanoseconds - lastCommitEvent.uptimeNanoseconds >= UInt64(options.tickMs * options.settings.heartbeatTicks) * 1_000_000
        {
            events.write("commit", term: core.term, [("index", .int(Int64(c)))])
            commitToReport = nil
            lastCommitEvent = now
        }
        reportDroppedMessages()
        reportSilentPeers()
        for (index, p) in pendingWrites where p.deadline < now {
            p.request.connection.fail(p.request.id, "timeout")
            pendingWrites[index] = nil
        }
        pendingChanges.removeAll { p in
            guard p.deadline < now else { return false }
            p.request.connection.fail(p.request.id, "timeout")
            return true
        }
        pendingSnapshots.removeAll { p in
            guard p.deadline < now else { return false }
            p.request.connection.fail(p.request.id, "timeout")
            return true
        }
    }

    /// Says in node.log when one turn of the loop took longer than a heartbeat interval:
    /// meanwhile nothing was sent, so followers may have timed out.
    func reportSlowIteration(since start: DispatchTime, inputs: Int) {
        let ms = Self.ms(since: start)
        guard ms >= options.tickMs * options.settings.heartbeatTicks else { return }
        nodeLog.write("loop: one turn took \(ms) ms (\(inputs) inputs, as \(roleName(core.role)))")
    }

    /// Says in node.log when the transport dropped messages to a peer because its queue was
    /// full (a slow or unreachable peer; Raft sends again what matters).
    func reportDroppedMessages() {
        for peer in addressBook.keys where peer != options.name {
            guard let q = transport.queueStatus(of: peer) else { continue }
            let before = droppedReported[peer] ?? 0
            guard q.droppedFrames > before else { continue }
            droppedReported[peer] = q.droppedFrames
            nodeLog.write("transport: \(q.droppedFrames - before) messages to \(peer) dropped, its queue full (\(q.queuedBytes) bytes waiting)")
        }
    }

    /// On a leader, says in node.log when a peer has not been heard from for four election
    /// timeouts (once, with what the leader knows of it and what its transport did), and
    /// when it is heard from again: a stuck peer shows here, not only in a timed-out step.
    func reportSilentPeers() {
        guard core.role == .leader else {
            silentPeers.removeAll()
            return
        }
        let limit = UInt64(4 * options.settings.electionTicks)
        for peer in core.progress.keys.sorted() {
            let pr = core.progress[peer]!
            let silent = pr.ticksSinceHeard(at: core.ticks)
            let ms = Int(silent) * options.tickMs
            if silent >= limit, !silentPeers.contains(peer) {
                silentPeers.insert(peer)
                let q = transport.queueStatus(of: peer)
                let transfer = pr.transfer.map { " sending snapshot \($0.snapshot.index) (\($0.ackedOffset) of \($0.snapshot.size) bytes acknowledged\($0.installing ? ", installing" : ""))" } ?? ""
                nodeLog.write("peer \(peer): nothing heard for \(ms) ms; \(pr.state.rawValue), match \(pr.match), next \(pr.next)\(transfer); transport: \(q?.queuedBytes ?? 0) bytes queued, \(q?.unreachableFrames ?? 0) messages dropped with no connection")
            } else if silent < limit, silentPeers.remove(peer) != nil {
                nodeLog.write("peer \(peer): heard from again (\(pr.state.rawValue), match \(pr.match))")
            }
        }
    }

    /// An input that arrives after the stop: a client request is answered shutting-down
    /// (nothing was done for it); anything else is dropped.
    func refuse(_ input: Input) {
        if case let .client(request) = input { request.connection.fail(request.id, "shutting-down") }
    }

    func shutdown() {
        carryOut()
        for input in mailbox.close() { refuse(input) }
        // Proposed, so perhaps committed: their outcome is unknown to the client.
        answerLeadershipLost()
        for p in pendingSnapshots { p.request.connection.fail(p.request.id, "shutting-down") }
        if let c = commitToReport { events.write("commit", term: core.term, [("index", .int(Int64(c)))]) }
        abortSnapshotReceive()
        installing?.cancel()  // an install not yet renamed into place is dropped, as by a crash
        try? storage.close()
        events.write("stop", term: core.term, [("reason", .string(stopReason ?? "stopped"))])
        events.close()
        nodeLog.close()
    }
}
