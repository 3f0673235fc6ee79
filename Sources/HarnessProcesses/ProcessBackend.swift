import Harness
import RaftNodeKit
import RaftNodeWire
import Foundation
import RaftStorage
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The product's back end: every node a `raft-node` child process with its own data dir
/// `RUN/nodes/NODE/` (its stdout and stderr appended to `RUN/nodes/NODE/stderr`), reached by
/// its peers only through the harness's link proxies, so that cuts, loss and delay are
/// the harness's to make.
///
/// Sockets: each node listens for peers on `SOCK/NODE.peer`; the addresses the nodes are
/// given (`--member`, and `add`'s address) are the proxies', `SOCK/NODE.proxy`. `SOCK` is
/// `RUN/sock` when that is short enough for a UNIX socket path (at most 103 bytes), else a
/// fresh `/tmp/hx-XXXXXX` (removed at shutdown). The client socket is
/// `RUN/nodes/NODE/client.sock` when it fits, else `SOCK/NODE.client`.
///
/// Every child is started with `--exit-on-stdin-close` and a stdin pipe whose write end only
/// the harness holds, so no child outlives the harness, however it ends.
public final class ProcessBackend: ClusterBackend {
    public let runDirectory: String
    public let nodeBinary: String
    /// Where the peer and proxy sockets are.
    public let socketDirectory: String
    private let ownsSocketDirectory: Bool
    private let group: MultiThreadedEventLoopGroup
    private let network: NetworkState
    private let state = NIOLockedValueBox(State())
    /// How long `status` waits for an answer.
    public var statusTimeoutMs: Int { 1000 }

    private struct Node {
        /// The arguments of its next start (the first configuration, or --join).
        var arguments: [String]
        var process: ChildProcess?
        var paused = false
        var lastExit: String?
    }

    private struct State {
        var nodes: [String: Node] = [:]
        var order: [String] = []
        var proxies: [String: LinkProxy] = [:]
        var shutDown = false
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Every back end not yet shut down, so that a signal handler can end every child.
    private static let live = NIOLockedValueBox<[ObjectIdentifier: ProcessBackend]>([:])

    /// - Parameters:
    ///   - runDirectory: the run's folder; nodes' data dirs go in `nodes/` under it.
    ///   - nodeBinary: the `raft-node` to run; by default the one beside this executable.
    ///   - seed: seeds the network's losses and delays.
    public init(runDirectory: String, nodeBinary: String? = nil, seed: UInt64) throws {
        let run = URL(fileURLWithPath: runDirectory).standardizedFileURL.path
        guard let binary = nodeBinary ?? Self.locateNodeBinary() else {
            throw Failure("cannot find the raft-node binary beside \(CommandLine.arguments.first ?? "the harness"); build it (swift build) or give its path")
        }
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw Failure("\(binary) is not an executable file") }
        do {
            try FileManager.default.createDirectory(atPath: run + "/nodes", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: run + "/journals", withIntermediateDirectories: true)
        } catch {
            throw Failure("cannot create \(run)/nodes: \(error.localizedDescription)")
        }
        let candidate = run + "/sock"
        // The longest socket name: a 40-byte node name and ".client".
        if candidate.utf8.count + 1 + 40 + 7 <= Self.maxSocketPath {
            try? FileManager.default.createDirectory(atPath: candidate, withIntermediateDirectories: true)
            socketDirectory = candidate
            ownsSocketDirectory = false
        } else {
            var template = Array("/tmp/hx-\(getpid())-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else {
                throw Failure("the run path is too long for UNIX sockets and mkdtemp in /tmp failed: \(String(cString: strerror(errno)))")
            }
            socketDirectory = String(cString: made)
            ownsSocketDirectory = true
        }
        self.runDirectory = run
        self.nodeBinary = binary
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.network = NetworkState(seed: seed)
        Self.live.withLockedValue { $0[ObjectIdentifier(self)] = self }
    }

    /// SwiftNIO refuses UNIX socket paths over 103 bytes.
    public static let maxSocketPath = 103

    /// `raft-node` beside the running executable (the harness, or a test bundle), else nil.
    public static func locateNodeBinary() -> String? {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        if let exe = Bundle.main.executableURL { dirs.append(exe.resolvingSymlinksInPath().deletingLastPathComponent()) }
        if let arg0 = CommandLine.arguments.first {
            dirs.append(URL(fileURLWithPath: arg0).resolvingSymlinksInPath().deletingLastPathComponent())
        }
        var bundle = Bundle.main.bundleURL
        for _ in 0..<3 {
            dirs.append(bundle)
            bundle.deleteLastPathComponent()
        }
        for dir in dirs {
            let path = dir.appendingPathComponent("raft-node").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    // MARK: Paths

    public func dataDirectory(_ name: String) -> String { runDirectory + "/nodes/" + name }

    func socketPath(_ name: String, _ suffix: String) throws -> String {
        let path = socketDirectory + "/" + name + "." + suffix
        guard path.utf8.count <= Self.maxSocketPath else {
            throw Failure("socket path \(path) is \(path.utf8.count) bytes, over the limit of \(Self.maxSocketPath): use a shorter node name")
        }
        return path
    }

    func realPeerPath(_ name: String) throws -> String { try socketPath(name, "peer") }
    /// The address the other nodes are given for `name`.
    public func peerAddress(_ name: String) throws -> String { try socketPath(name, "proxy") }

    public func clientPath(_ name: String) throws -> String {
        let inData = dataDirectory(name) + "/client.sock"
        return inData.utf8.count <= Self.maxSocketPath ? inData : try socketPath(name, "client")
    }

    // MARK: Starting

    func baseArguments(_ name: String, _ settings: NodeSettings) throws -> [String] {
        [
            "--name", name, "--data-dir", dataDirectory(name), "--listen", try realPeerPath(name),
            "--client", try clientPath(name), "--exit-on-stdin-close", "--keep-history",
        ] + settings.arguments
    }

    func ensureProxy(_ name: String) async throws {
        if state.withLockedValue({ $0.proxies[name] }) != nil { return }
        let proxy = try await LinkProxy.start(
            destination: name, listenPath: try peerAddress(name), realPath: try realPeerPath(name), network: network, group: group)
        let extra: LinkProxy? = state.withLockedValue { s in
            if s.proxies[name] != nil { return proxy }
            s.proxies[name] = proxy
            return nil
        }
        await extra?.close()
    }

    public func createCluster(_ names: [String], settings: NodeSettings) async throws {
        let members = try names.flatMap { ["--member", "\($0)=\(try peerAddress($0))"] }
        for n in names {
            if state.withLockedValue({ $0.nodes[n]?.process }) != nil { throw Failure("\(n) is already running") }
            try FileManager.default.createDirectory(atPath: dataDirectory(n), withIntermediateDirectories: true)
            try await ensureProxy(n)
            let args = try baseArguments(n, settings) + members
            state.withLockedValue { s in
                if s.nodes[n] == nil { s.order.append(n) }
                s.nodes[n] = Node(arguments: args)
            }
        }
        for n in names { try launch(n) }
        for n in names { try await waitUntilAnswering(n) }
    }

    public func start(_ name: String) async throws {
        guard state.withLockedValue({ $0.nodes[name] }) != nil else { throw Failure("\(name) was never started") }
        try launch(name)
        try await waitUntilAnswering(name)
    }

    public func startJoining(_ name: String, settings: NodeSettings) async throws -> String {
        reapExited()
        if state.withLockedValue({ $0.nodes[name]?.process }) != nil { throw Failure("\(name) is running") }
        // Empty data: what a former member left is wiped.
        if state.withLockedValue({ $0.nodes[name] }) != nil { try wipeData(name) }
        try FileManager.default.createDirectory(atPath: dataDirectory(name), withIntermediateDirectories: true)
        try await ensureProxy(name)
        let others = state.withLockedValue { s in s.order.filter { $0 != name } }
        let members = try others.flatMap { ["--member", "\($0)=\(try peerAddress($0))"] }
        let args = try baseArguments(name, settings) + ["--join"] + members
        state.withLockedValue { s in
            if s.nodes[name] == nil { s.order.append(name) }
            s.nodes[name] = Node(arguments: args)
        }
        try launch(name)
        try await waitUntilAnswering(name)
        return try peerAddress(name)
    }

    private func launch(_ name: String) throws {
        reapExited()
        let (args, running, down) = state.withLockedValue { s in (s.nodes[name]?.arguments ?? [], s.nodes[name]?.process != nil, s.shutDown) }
        guard !down else { throw Failure("the harness is shutting down") }
        guard !running else { throw Failure("\(name) is already running") }
        // What a killed process left behind; nothing listens there now.
        unlink(try realPeerPath(name))
        unlink(try clientPath(name))
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(
                path: nodeBinary, arguments: args, output: dataDirectory(name) + "/stderr",
                environment: ["RAFT_UNSYNCED_JOURNAL": journalPath(name)])
        } catch {
            throw Failure("\(name): \(error)")
        }
        state.withLockedValue { s in
            s.nodes[name]?.process = child
            s.nodes[name]?.paused = false
        }
    }

    /// Until the node answers `status` (it has opened its files and sockets); fails if the
    /// process exits first.
    private func waitUntilAnswering(_ name: String, withinMs: Int = 15_000) async throws {
        let deadline = ContinuousClock.now + .milliseconds(withinMs)
        let path = try clientPath(name)
        while true {
            if case .answer = await NodeConnection.request(.status, to: path, timeoutMs: 1000) { return }
            reapExited()
            if let exit = state.withLockedValue({ s in s.nodes[name].flatMap { $0.process == nil ? ($0.lastExit ?? "ended") : nil } }) {
                throw Failure("\(name) ended (\(exit)) before answering on \(path): \(stderrTail(name))")
            }
            guard ContinuousClock.now < deadline else { throw Failure("\(name) did not answer on \(path) within \(withinMs)ms") }
            try await Task.sleep(for: .milliseconds(30))
        }
    }

    func stderrTail(_ name: String) -> String {
        let text = (try? String(contentsOfFile: dataDirectory(name) + "/stderr", encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").suffix(3)
        return lines.isEmpty ? "nothing on stderr" : lines.joined(separator: " | ")
    }

    // MARK: Signals

    private func process(_ name: String) throws -> ChildProcess {
        reapExited()
        guard let p = state.withLockedValue({ $0.nodes[name]?.process }) else { throw Failure("\(name) is not running") }
        return p
    }

    /// Reaps every child that has ended; closes its stdin pipe.
    private func reapExited() {
        state.withLockedValue { s in
            for (name, node) in s.nodes {
                guard let p = node.process, let how = p.reap() else { continue }
                close(p.stdinWriteEnd)
                s.nodes[name]?.process = nil
                s.nodes[name]?.paused = false
                s.nodes[name]?.lastExit = how
            }
        }
    }

    /// Waits until the process has ended; false when it has not within `ms`.
    private func waitForExit(_ name: String, pid: pid_t, withinMs ms: Int) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(ms)
        while true {
            reapExited()
            let gone = state.withLockedValue { $0.nodes[name]?.process?.pid != pid }
            if gone { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    public func stop(_ name: String) async throws {
        let p = try process(name)
        p.signal(SIGTERM)
        p.signal(SIGCONT)
        if await waitForExit(name, pid: p.pid, withinMs: 20_000) { return }
        p.signal(SIGKILL)
        _ = await waitForExit(name, pid: p.pid, withinMs: 5_000)
        throw Failure("\(name) did not exit within 20s of SIGTERM; killed")
    }

    public func kill(_ name: String) async throws {
        let p = try process(name)
        p.signal(SIGKILL)
        guard await waitForExit(name, pid: p.pid, withinMs: 10_000) else { throw Failure("\(name) (pid \(p.pid)) survived SIGKILL for 10s") }
    }

    public func pause(_ name: String) async throws {
        let p = try process(name)
        await p.stop()
        state.withLockedValue { $0.nodes[name]?.paused = true }
    }

    public func resume(_ name: String) async throws {
        let p = try process(name)
        p.signal(SIGCONT)
        state.withLockedValue { $0.nodes[name]?.paused = false }
    }

    public func wipe(_ name: String) async throws {
        reapExited()
        guard state.withLockedValue({ $0.nodes[name] }) != nil else { throw Failure("\(name) was never started") }
        guard state.withLockedValue({ $0.nodes[name]?.process }) == nil else { throw Failure("\(name) is running") }
        try wipeData(name)
        // Started again, it has no first configuration: it waits to be added.
        let others = state.withLockedValue { s in s.order.filter { $0 != name } }
        let members = try others.flatMap { ["--member", "\($0)=\(try peerAddress($0))"] }
        state.withLockedValue { s in
            guard var args = s.nodes[name]?.arguments else { return }
            if let i = args.firstIndex(of: "--member") { args.removeSubrange(i...) }
            args.removeAll { $0 == "--join" }
            s.nodes[name]?.arguments = args + ["--join"] + members
        }
    }

    private func wipeData(_ name: String) throws {
        try NodeDataDirectory.wipe(dataDirectory(name))
    }

    // MARK: Network

    public func partition(_ groups: [[String]]?) async throws { network.partition(groups) }

    public func isolate(_ name: String) async throws { network.isolate(name) }

    public func setLoss(percent: Double, delayMs: ClosedRange<Int>?) async throws {
        network.setLoss(percent: percent, delayMs: delayMs)
    }

    // MARK: What runs

    public var running: [String] {
        reapExited()
        return state.withLockedValue { s in s.order.filter { s.nodes[$0]?.process != nil } }
    }

    public var paused: Set<String> {
        state.withLockedValue { s in Set(s.nodes.filter { $0.value.process != nil && $0.value.paused }.keys) }
    }

    public var known: [String] { state.withLockedValue { $0.order } }

    /// Process ids of the running nodes.
    public var pids: [String: Int32] {
        reapExited()
        return state.withLockedValue { s in s.nodes.compactMapValues { $0.process?.pid } }
    }

    // MARK: Client

    public func status(_ name: String) async -> NodeStatus? {
        guard case let .status(s)? = try? await request(name, .status, timeoutMs: statusTimeoutMs) else { return nil }
        return s
    }

    public func put(_ name: String, key: String, value: String, timeoutMs: Int) async -> WriteOutcome {
        do {
            let answer = try await request(name, .put(key: key, value: value), timeoutMs: timeoutMs)
            guard case let .written(index, term) = answer else { return .failed("not a write's answer: \(answer)") }
            return .ok(index: index, term: term)
        } catch {
            return error.outcome
        }
    }

    public func request(_ name: String, _ op: ClientOp, timeoutMs: Int) async throws(RequestFailure) -> ClientAnswer {
        guard let path = try? clientPath(name) else { throw RequestFailure(.refused("not sent", leader: nil), "no client socket for \(name)") }
        switch await NodeConnection.request(op, to: path, timeoutMs: timeoutMs) {
        case let .notSent(why): throw RequestFailure(.refused("not sent", leader: nil), why)
        case let .noAnswer(why): throw RequestFailure(.unknown("no answer", leader: nil), why)
        case let .unreadable(text): throw RequestFailure(.failed("unreadable answer"), "unreadable answer from \(name): \(text)")
        case let .answer(answer):
            if case let .failed(error, leader, _) = answer {
                throw RequestFailure(.of(error: error, leader: leader), "\(name) answered \(answer.line(id: .int(1)))")
            }
            return answer
        }
    }

    /// The process world's back end for `ScenarioRunner`: a back end and the line saying
    /// what it runs.
    public static let maker: @Sendable (String, String?, UInt64) throws -> (any ClusterBackend, String) = { dir, binary, seed in
        let p = try ProcessBackend(runDirectory: dir, nodeBinary: binary, seed: seed)
        return (p, "raft-node \(p.nodeBinary) sockets \(p.socketDirectory) started \(timestamp())")
    }

    public let clock: any RunClock = WallClock()

    /// Where the node notes what it synced (test-only; `UnsyncedWrites`), for `crash`.
    func journalPath(_ name: String) -> String { runDirectory + "/journals/" + name }

    /// SIGKILL, then what the node wrote but did not fsync is cut from its files, as a power
    /// cut of its own would: the journal it kept says what was synced.
    public func crash(_ name: String) async throws -> [String] {
        try await kill(name)
        let journal = journalPath(name)
        let cut = UnsyncedWrites.ledger(journal: journal).rollBack(under: dataDirectory(name))
        unlink(journal)
        return cut
    }

    public func events(_ name: String) -> [String] {
        let text = (try? String(contentsOfFile: dataDirectory(name) + "/events.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    // MARK: The end

    /// SIGTERM to every node (SIGKILL to those still there after a few seconds), then closes
    /// the proxies and removes a short socket directory.
    public func shutdown() async {
        let first = state.withLockedValue { s -> Bool in
            defer { s.shutDown = true }
            return !s.shutDown
        }
        guard first else { return }
        reapExited()
        let procs = state.withLockedValue { s in s.nodes.compactMap { n, v in v.process.map { (n, $0) } } }
        for (_, p) in procs {
            p.signal(SIGTERM)
            p.signal(SIGCONT)
        }
        for (n, p) in procs where !(await waitForExit(n, pid: p.pid, withinMs: 5_000)) {
            p.signal(SIGKILL)
            _ = await waitForExit(n, pid: p.pid, withinMs: 5_000)
        }
        let proxies = state.withLockedValue { s in
            defer { s.proxies.removeAll() }
            return Array(s.proxies.values)
        }
        for p in proxies { await p.close() }
        try? await group.shutdownGracefully()
        if ownsSocketDirectory { try? FileManager.default.removeItem(atPath: socketDirectory) }
        Self.live.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(self)) }
    }

    /// SIGKILL to every child now, and reaps them: for a signal handler, or a harness that
    /// must end at once.
    public func killAllNow() {
        let procs = state.withLockedValue { s in
            s.shutDown = true
            return s.nodes.compactMap { n, v in v.process.map { (n, $0) } }
        }
        for (_, p) in procs { p.signal(SIGKILL) }
        state.withLockedValue { s in
            for (n, p) in procs {
                s.nodes[n]?.lastExit = p.waitBlocking()
                close(p.stdinWriteEnd)
                s.nodes[n]?.process = nil
            }
        }
        if ownsSocketDirectory { try? FileManager.default.removeItem(atPath: socketDirectory) }
    }

    /// Ends every child of every back end not yet shut down (SIGINT or SIGTERM to the harness).
    public static func killEveryChild() {
        for backend in live.withLockedValue({ Array($0.values) }) { backend.killAllNow() }
    }
}
