// RaftNode is the process runtime of one member: it runs the node's NodeMachine with the
// node's files (RaftStorage), its peers (RaftTransport), the wall clock and the client socket.
// It decides nothing; the machine does.
//
//   Node.swift             the runtime: the mailbox, the loop, the outputs carried out
//   ClientServer.swift     the client protocol of SPEC section 5: JSON lines on client.sock
//   SnapshotRestore.swift  the restore that follows a snapshot while it arrives
//   NodeOptions.swift      what a node is started with

import Dispatch
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Raft
import RaftNodeHost
import RaftNodeMachine
import RaftNodeWire
import RaftStorage
import RaftTransport

/// What reaches the node's loop from other threads: a client request (the loop gives it a
/// token and keeps its connection), or an input for the machine.
enum Input: Sendable {
    case client(ClientRequest)
    case node(NodeInput)
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
        // Test-only (a harness that may `crash` this node sets it): note what is synced.
        UnsyncedWrites.startJournalFromEnvironment()
        let mailbox = Mailbox()
        let group = MultiThreadedEventLoopGroup.singleton
        // Clients on a thread of their own: parsing a burst of large request lines must not
        // hold up the peer connections (a heartbeat late by 200 ms is an election).
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Open the files first: a damaged data dir refuses to start, naming file and offset.
        let storage = try NodeStorage(directory: options.dataDir, keepArchive: options.keepHistory)
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
            onMessage: { mailbox.post(.node(.message($0))) },
            onError: { what, detail in mailbox.post(.node(.error(what: what, detail: detail))) },
            isKnownPeer: { _ in true },
            onPeerAddress: { mailbox.post(.node(.peerAddress($0, $1))) },
            onPeerDisconnected: { mailbox.post(.node(.peerDisconnected($0))) })
        try await transport.start()
        let server: ClientServer
        do {
            server = try await ClientServer.start(
                path: options.clientSocket, group: clientGroup,
                submit: { request in
                    // Read after the loop has ended: nothing will carry it out.
                    if !mailbox.post(.client(request)) { request.connection.answer(request.id, .failed(.shuttingDown)) }
                },
                onError: { what, detail in mailbox.post(.node(.error(what: what, detail: detail))) })
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
                mailbox.post(.node(.stop(reason: "stdin closed")))
            }
        }
        let code: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread {
                let exit: Int32
                do {
                    let loop = try NodeLoop(options: options, mailbox: mailbox, transport: transport)
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
            source.setEventHandler { mailbox.post(.node(.stop(reason: sig == SIGTERM ? "SIGTERM" : "SIGINT"))) }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// The loop: runs the node's `NodeMachine` on one thread, and carries out what it asks:
/// files (through `NodeStorage`), peers (the transport), clients (their connections), and
/// snapshot work on threads of its own. The decisions are the machine's; what is here is
/// I/O, the clock, and what node.log says of them.
final class NodeLoop {
    let options: NodeOptions
    let mailbox: Mailbox
    let transport: PeerTransport
    let storage: NodeStorage
    let events: EventLog
    let nodeLog: NodeLog
    var machine: NodeMachine

    /// The connection and `id` of each client request the machine holds, by token.
    var clients: [ClientToken: (id: JSONValue, connection: ClientConnection)] = [:]
    /// The answers of this turn, written at its end.
    let answers = AnswerBatch()
    var nextToken: ClientToken = 1

    // Snapshot work.
    /// The files the transfers of this leader read.
    var snapshotChunks = SnapshotChunks()
    /// The snapshot being received, restored as it arrives.
    var restoring: SnapshotRestore?
    /// A restore told to install; it posts its outcome.
    var installing: SnapshotRestore?

    /// Messages the transport dropped for each peer (its queue was full), as last logged.
    var droppedReported: [NodeID: Int] = [:]
    /// Peers a leader has said in node.log it has not heard from (until heard again).
    var silentPeers: Set<NodeID> = []
    /// The peers the transport sends to, as last set.
    var peerNames: [NodeID] = []
    let epoch = DispatchTime.now()

    init(options: NodeOptions, mailbox: Mailbox, transport: PeerTransport) throws {
        self.options = options
        self.mailbox = mailbox
        self.transport = transport
        // Segments freed by a compaction are unlinked off the loop: hundreds of megabytes of
        // them took 400 ms, with no heartbeat sent meanwhile.
        storage = try NodeStorage(directory: options.dataDir, logOptions: .init(removeInBackground: true), keepArchive: options.keepHistory)
        events = EventLog(path: options.dataDir + "/events.jsonl", node: options.name)
        let nodeLog = NodeLog(path: options.dataDir + "/node.log")
        self.nodeLog = nodeLog
        events.mirror = { nodeLog.write($0) }
        nodeLog.write("raft-node \(options.name) starting: data \(options.dataDir), peers on \(options.peerAddress), clients on \(options.clientSocket)")
        let state = try storage.durableState()
        let store = try StateFiles.restoreLatest(storage)
        if let fault = FaultSwitch.active { nodeLog.write("planted fault \(fault.rawValue) is on (a -DRAFT_FAULTS build, RAFT_FAULT set)") }
        var config = NodeMachine.Config(
            name: options.name, settings: options.settings, tickMs: options.tickMs, requestTimeoutMs: options.requestTimeoutMs,
            initialAddresses: options.initialMembers)
        config.ignoreSnapshotAfterRestart = FaultSwitch.isOn(.ignoreSnapshotAfterRestart)
        config.answerReadsLocally = FaultSwitch.isOn(.staleReads)
        config.writeApplyEvents = options.keepHistory
        machine = NodeMachine(config: config, seed: UInt64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds), state: state, store: store, now: 0)
    }

    /// Milliseconds since the loop began: the machine's clock.
    var now: Millis { Millis((DispatchTime.now().uptimeNanoseconds - epoch.uptimeNanoseconds) / 1_000_000) }

    func run() -> Int32 {
        carryOut()
        while machine.stopReason == nil {
            let wake = epoch.uptimeNanoseconds + UInt64(max(0, machine.nextWake)) * 1_000_000
            let inputs = mailbox.take(waitingUntil: DispatchTime(uptimeNanoseconds: wake))
            let busy = DispatchTime.now()
            defer { reportSlowIteration(since: busy, inputs: inputs.count) }
            machine.step(inputs.map(admit), now: now)
            let t = now
            if t >= machine.nextWake {
                machine.advance(to: t)
                reportDroppedMessages()
                reportSilentPeers()
            }
            carryOut()
        }
        shutdown()
        return machine.exitCode
    }

    /// The machine's input for `input`: a client request gets a token and its connection
    /// is kept until the answer.
    func admit(_ input: Input) -> NodeInput {
        switch input {
        case let .client(request):
            let token = nextToken
            nextToken += 1
            clients[token] = (request.id, request.connection)
            return .client(token, request.op)
        case let .node(i):
            if case .snapshotRestored = i { installing = nil }
            if case .snapshotRestoreFailed = i { installing = nil }
            return i
        }
    }

    // MARK: Outputs

    /// Carries out the machine's outputs until it has none: persisting first and syncing
    /// once before anything that depends on it leaves the node.
    func carryOut() {
        while machine.pendingOutputs {
            if let error = storage.carryOut(machine.takeOutputs(), perform) {
                FileHandle.standardError.write(Data("raft-node: storage failed: \(error)\n".utf8))
                machine.step(.storageFailed("\(error)"), now: now)
            }
        }
        answers.flush()
    }

    func perform(_ output: NodeOutput) {
        switch output {
        case .persist:
            break  // carried out by `NodeStorage.carryOut`
        case let .send(m):
            transport.send(m)
        case let .sendSnapshotChunk(to, term, meta, offset, length, done):
            do {
                transport.send(try snapshotChunks.message(
                    from: options.name, to: to, term: term, meta, offset: offset, length: length, done: done, in: storage.snapshots))
            } catch {
                machine.step(.snapshotSendFailed(to: to, meta, reason: "\(error)"), now: now)
            }
        case let .answer(token, answer):
            guard let c = clients.removeValue(forKey: token) else { return }
            answers.add(c.connection, c.id, answer)
        case let .event(event, term):
            events.write(event, term: term)
        case let .note(text):
            nodeLog.write(text)
        case let .takeSnapshot(index, term, configuration, state):
            takeSnapshot(state, index: index, term: term, configuration: configuration)
        case let .beginSnapshotReceive(from, meta):
            abortSnapshotReceive()
            do {
                let r = try storage.snapshots.receive(meta)
                do {
                    restoring = try SnapshotRestore(receiving: r, from: from, mailbox: mailbox)
                } catch {
                    r.abort()
                    machine.step(.snapshotRestoreFailed(meta, "cannot follow the snapshot being received: \(error)"), now: now)
                }
            } catch {
                machine.step(.storageFailed("\(error)"), now: now)
            }
        case let .writeSnapshotChunk(_, offset, data):
            do {
                try restoring?.write(at: offset, data)
            } catch {
                machine.step(.storageFailed("\(error)"), now: now)
            }
        case let .installSnapshot(meta):
            guard let restore = restoring, restore.metadata == meta else {
                abortSnapshotReceive()
                machine.step(.snapshotRestoreFailed(meta, "no snapshot \(meta) being received"), now: now)
                return
            }
            restoring = nil
            installing = restore
            restore.install()
        case .abortSnapshotReceive:
            abortSnapshotReceive()
        case let .snapshotFilesInUse(inUse):
            snapshotChunks.keep(only: inUse)
        case let .retireSnapshots(newest):
            // Clean-up: what fails here is done again after the next snapshot. A transfer
            // that still reads an older file holds it open.
            try? storage.snapshots.retire(olderThan: newest)
        case let .setPeers(addresses):
            transport.setPeers(addresses)
            peerNames = Array(addresses.keys)
        }
    }

    /// Streams the state on a thread of its own (it is a value: writes go on meanwhile).
    func takeSnapshot(_ state: KeyValueStore, index: LogIndex, term: Term, configuration: Configuration) {
        let directory = storage.snapshots.directory
        let mailbox = self.mailbox
        let started = DispatchTime.now()
        let level = storage.snapshots.compressionLevel
        Thread.detachNewThread {
            do {
                let meta = try StateFiles.writeSnapshot(state, directory: directory, level: level, index: index, term: term, configuration: configuration)
                mailbox.post(.node(.snapshotTaken(meta, ms: Self.ms(since: started))))
            } catch {
                mailbox.post(.node(.snapshotTakeFailed("\(error)")))
            }
        }
    }

    func abortSnapshotReceive() {
        restoring?.cancel()
        restoring = nil
    }

    static func ms(since start: DispatchTime) -> Int {
        Int((DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000)
    }

    // MARK: What node.log says of the loop and the transport

    /// Says in node.log when one turn of the loop took longer than a heartbeat interval:
    /// meanwhile nothing was sent, so followers may have timed out.
    func reportSlowIteration(since start: DispatchTime, inputs: Int) {
        let ms = Self.ms(since: start)
        guard ms >= options.tickMs * options.settings.heartbeatTicks else { return }
        nodeLog.write("loop: one turn took \(ms) ms (\(inputs) inputs, as \(NodeMachine.roleName(machine.core.role)))")
    }

    /// Says in node.log when the transport dropped messages to a peer because its queue was
    /// full (a slow or unreachable peer; Raft sends again what matters).
    func reportDroppedMessages() {
        for peer in peerNames.sorted() {
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
        let core = machine.core
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

    func shutdown() {
        carryOut()
        machine.step(mailbox.close().map(admit), now: now)  // each client answered shutting-down
        machine.shutdown(now: now)
        carryOut()
        installing?.cancel()  // an install not yet renamed into place is dropped, as by a crash
        // Anything still unanswered (nothing should be) is not left without an answer.
        for (_, c) in clients { c.connection.answer(c.id, .failed(.shuttingDown)) }
        clients.removeAll()
        try? storage.close()
        events.close()
        nodeLog.close()
    }
}
