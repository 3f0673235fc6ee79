import Foundation
import RaftNodeKit
import RaftNodeWire
import Testing

// A small harness for tests that run real `raft-node` processes: start, stop (SIGTERM),
// kill (SIGKILL), pause (SIGSTOP) and resume (SIGCONT) a node; a blocking client for the
// JSON-lines client socket; waits with generous deadlines; events.jsonl read back.
//
// Every child is started with --exit-on-stdin-close and a stdin pipe held by this process,
// so that the children die with the test process however it ends; each test also kills
// its children in a `defer`. Set RAFT_NODE_TESTS_KEEP=1 to keep the temporary directories.

/// Deadlines are safety nets only: a loaded 2-core machine may be slow, never this slow.
let defaultTimeout: Double = 30

/// The package's root directory.
let packageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    url.deleteLastPathComponent()  // RaftNodeTests
    url.deleteLastPathComponent()  // Tests
    return url.deletingLastPathComponent()
}()

/// The built `raft-node`: beside the test bundle (what `swift build --build-tests` and
/// `swift test` build), else in the package's build directories.
func raftNodePath() -> String? {
    NodeBinaries.locate("raft-node", packageRoot: packageRoot, buildDirectories: [".build-nodetests", ".build"])
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every `poll` seconds until it holds; throws after `timeout` seconds,
/// with `what` and the last thing `condition` noted in `note`.
func waitUntil(_ what: String, timeout: Double = defaultTimeout, poll: Double = 0.05, _ condition: (inout String) throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var note = ""
    while true {
        if try condition(&note) { return }
        if Date() > deadline { throw HarnessError("timed out after \(Int(timeout)) s waiting until \(what)\(note.isEmpty ? "" : ": " + note)") }
        Thread.sleep(forTimeInterval: poll)
    }
}

func waitUntil(_ what: String, timeout: Double = defaultTimeout, poll: Double = 0.05, _ condition: () throws -> Bool) throws {
    try waitUntil(what, timeout: timeout, poll: poll) { (_: inout String) in try condition() }
}

// MARK: JSON

/// A JSON object read back: an answer from the client socket or a line of events.jsonl,
/// read by the wire module's parser (the one the harness, the checker and the node use).
struct JSONObject: CustomStringConvertible {
    let value: JSONValue
    let line: String

    init?(line: String) {
        guard let value = JSONValue.parse(line), case .object = value else { return nil }
        self.value = value
        self.line = line
    }

    subscript(_ key: String) -> JSONValue? { value[key] }
    func string(_ key: String) -> String? { value[key]?.stringValue }
    func int(_ key: String) -> Int? { value[key]?.intValue.map { Int($0) } }
    func bool(_ key: String) -> Bool? { value[key]?.boolValue }
    func strings(_ key: String) -> [String]? {
        guard case let .array(xs)? = value[key] else { return nil }
        let out = xs.compactMap { (x: JSONValue) in x.stringValue }
        return out.count == xs.count ? out : nil
    }
    func isNull(_ key: String) -> Bool { value[key] == .null }
    var ok: Bool { bool("ok") == true }
    var error: String? { string("error") }
    /// events.jsonl: the event's name.
    var event: String? { string("event") }
    /// events.jsonl: the line as the typed event of SPEC section 4 (nil for anything else).
    var nodeEvent: NodeEventLine? { NodeEventLine(value) }
    var description: String { line }
}

/// A JSON string literal.
func jsonQuote(_ s: String) -> String { JSONValue.quote(s) }

// MARK: Sockets

/// A blocking UNIX stream socket with send and receive timeouts (the kit's).
typealias UnixSocket = NodeConnection

extension NodeConnection {
    convenience init(path: String, timeout: Double = defaultTimeout) throws {
        try self.init(path: path, timeoutMs: Int(timeout * 1000))
    }
}

/// A client of one node's client socket: one JSON line out, lines read until the answer
/// with the same id.
final class NodeClient {
    let socket: UnixSocket
    private var nextID = 1

    init(path: String, timeout: Double = defaultTimeout) throws {
        socket = try UnixSocket(path: path, timeout: timeout)
    }

    /// Sends a request without waiting; returns its id.
    func send(_ op: String, _ fields: KeyValuePairs<String, String> = [:]) throws -> Int {
        let id = nextID
        nextID += 1
        var line = "{\"id\":\(id),\"op\":\"\(op)\""
        for (k, v) in fields { line += "," + jsonQuote(k) + ":" + jsonQuote(v) }
        try socket.write(Array((line + "}\n").utf8))
        return id
    }

    /// Sends a raw line as it is (a newline added).
    func sendRaw(_ line: String) throws { try socket.write(Array((line + "\n").utf8)) }

    func readAnswer() throws -> JSONObject {
        let line = try socket.readLine()
        guard let answer = JSONObject(line: line) else { throw HarnessError("an answer that is not a JSON object: \(line)") }
        return answer
    }

    /// Reads answers until the one for `id` (answers to other ids are dropped).
    func answer(to id: Int) throws -> JSONObject {
        while true {
            let a = try readAnswer()
            if a.int("id") == id { return a }
        }
    }

    func call(_ op: String, _ fields: KeyValuePairs<String, String> = [:]) throws -> JSONObject {
        try answer(to: send(op, fields))
    }
}

// MARK: Processes

/// One raft-node process (and its restarts) with its own data directory.
final class NodeProcess {
    let name: String
    let dataDir: String
    let peerAddress: String
    var arguments: [String]
    let binary: String
    let outputPath: String
    /// The running process (the kit's child: a stdin pipe held here, its own process group).
    private(set) var child: ChildProcess?
    /// How the last process ended, once it has.
    private(set) var ended: String?
    private(set) var starts = 0
    /// Stopped with SIGSTOP and not resumed: its sockets accept connections but nothing answers.
    private(set) var paused = false

    var clientSocket: String { dataDir + "/client.sock" }
    var eventsPath: String { dataDir + "/events.jsonl" }
    var pid: Int32 { child?.pid ?? 0 }
    var isRunning: Bool {
        guard let c = child, ended == nil else { return false }
        if let how = c.reap() {
            ended = how
            close(c.stdinWriteEnd)
            return false
        }
        return true
    }

    init(name: String, dataDir: String, peerAddress: String, arguments: [String], binary: String, outputPath: String) {
        self.name = name
        self.dataDir = dataDir
        self.peerAddress = peerAddress
        self.arguments = arguments
        self.binary = binary
        self.outputPath = outputPath
    }

    func start() throws {
        precondition(!isRunning, "\(name) is running")
        child = try ChildProcess.spawn(path: binary, arguments: ["--name", name, "--data-dir", dataDir, "--exit-on-stdin-close"] + arguments, output: outputPath)
        ended = nil
        paused = false
        starts += 1
    }

    func signal(_ sig: Int32) {
        guard isRunning else { return }
        child?.signal(sig)
    }

    /// SIGKILL, and waits for the process to be gone.
    func kill() {
        guard let c = child, isRunning else { return }
        c.signal(SIGKILL)
        ended = c.waitBlocking()
        close(c.stdinWriteEnd)
    }

    /// SIGTERM, without waiting (see `waitForExit`).
    func terminate() { signal(SIGTERM) }
    /// SIGSTOP, and waits until the kernel has stopped it (kill(2) returns before a running
    /// process stops): what the test sends next must not be answered by it.
    func pause() {
        guard isRunning else { return }
        child?.stopBlocking()
        paused = true
    }

    func resume() {
        signal(SIGCONT)
        paused = false
    }

    /// Waits for the process to exit by itself; its exit status, or nil if it was killed by
    /// a signal. Throws if it is still running after `timeout`.
    @discardableResult
    func waitForExit(timeout: Double = defaultTimeout) throws -> (status: Int32, bySignal: Bool) {
        guard child != nil else { throw HarnessError("\(name) was never started") }
        try waitUntil("\(name) exits", timeout: timeout) { !isRunning }
        let how = ended ?? "gone"
        let number = Int32(how.split(separator: " ").last ?? "") ?? -1
        return (number, how.hasPrefix("signal"))
    }

    /// A status answer, or nil if the node does not answer (not running, not listening yet).
    func status(timeout: Double = 5) -> JSONObject? {
        guard isRunning, !paused, let c = try? NodeClient(path: clientSocket, timeout: timeout) else { return nil }
        guard let a = try? c.call("status"), a.ok else { return nil }
        return a
    }

    /// events.jsonl, line by line; a line cut short by a kill is skipped. Every whole line
    /// must be an event of SPEC section 4 as the wire module's `NodeEventLine` reads it (the
    /// type the harness and the checker read): one that is not is recorded as an issue.
    func events() -> [JSONObject] {
        guard let data = FileManager.default.contents(atPath: eventsPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard let o = JSONObject(line: String(line)) else { return nil }
            if o.nodeEvent == nil { Issue.record("\(eventsPath): a line that is no event of SPEC section 4: \(line)") }
            return o
        }
    }

    func events(_ name: String) -> [JSONObject] { events().filter { $0.event == name } }

    /// The last lines of events.jsonl and of the process's output, for a failure message.
    func tail(_ n: Int = 12) -> String {
        let ev = events().suffix(n).map(\.line).joined(separator: "\n    ")
        let out = (FileManager.default.contents(atPath: outputPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let outTail = out.split(separator: "\n").suffix(5).joined(separator: "\n    ")
        return "\(name) (pid \(pid), running \(isRunning)):\n    events:\n    \(ev)\n    output:\n    \(outTail)"
    }
}

/// A cluster of raft-node processes in a fresh short directory under /tmp (UNIX socket
/// paths must stay within 103 bytes). `shutdown` kills every process it started.
final class NodeCluster {
    let root: String
    let binary: String
    /// Flags every node gets (timeouts, snapshot settings).
    let settings: [String]
    private(set) var nodes: [String: NodeProcess] = [:]
    /// The initial members, in order.
    let initialNames: [String]

    static let defaultSettings = ["--election-timeout", "300ms", "--heartbeat", "50ms"]

    init(_ names: [String], settings: [String] = []) throws {
        guard let binary = raftNodePath() else {
            throw HarnessError("raft-node is not built: run swift build --build-tests")
        }
        self.binary = binary
        var template = Array("/tmp/rnt-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw HarnessError("mkdtemp: errno \(errno)") }
        root = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.settings = Self.defaultSettings + settings
        initialNames = names
        for n in names {
            nodes[n] = makeNode(n, arguments: memberFlags(names))
        }
    }

    func peerAddress(_ name: String) -> String { root + "/" + name + ".peer" }

    func memberFlags(_ names: [String]) -> [String] {
        names.flatMap { ["--member", "\($0)=\(peerAddress($0))"] }
    }

    private func makeNode(_ name: String, arguments: [String]) -> NodeProcess {
        NodeProcess(
            name: name, dataDir: root + "/" + name, peerAddress: peerAddress(name), arguments: arguments + settings,
            binary: binary, outputPath: root + "/" + name + ".out")
    }

    subscript(_ name: String) -> NodeProcess { nodes[name]! }

    func startAll() throws {
        for n in initialNames { try nodes[n]!.start() }
    }

    /// A node to be added later: empty data, --join, --listen, and where the members are.
    func addJoiner(_ name: String, members: [String]) -> NodeProcess {
        let node = makeNode(name, arguments: ["--join", "--listen", peerAddress(name)] + memberFlags(members))
        nodes[name] = node
        return node
    }

    /// Kills every process and removes the directory (unless RAFT_NODE_TESTS_KEEP is set).
    func shutdown() {
        for node in nodes.values {
            node.resume()
            node.kill()
        }
        if ProcessInfo.processInfo.environment["RAFT_NODE_TESTS_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        } else {
            print("raft-node tests: kept \(root)")
        }
    }

    var running: [NodeProcess] { nodes.values.filter(\.isRunning).sorted { $0.name < $1.name } }
    /// Running and not paused.
    var answering: [NodeProcess] { running.filter { !$0.paused } }
    /// The node that last answered a request as leader: asked first next time.
    private var lastLeader: String?

    /// Every node's recent events and output, for a failure message.
    func dump() -> String { nodes.values.sorted { $0.name < $1.name }.map { $0.tail() }.joined(separator: "\n") }

    /// The leader that a majority of `among` agree on (same term, same leader), if any.
    func agreedLeader(among: [String]) -> (name: String, term: Int)? {
        let statuses = among.compactMap { nodes[$0]?.status() }
        for s in statuses where s.string("role") == "leader" {
            guard let name = s.string("name"), let term = s.int("term") else { continue }
            let agree = statuses.filter { $0.string("leader") == name && $0.int("term") == term }.count
            if agree * 2 > among.count { return (name, term) }
        }
        return nil
    }

    /// Waits until a majority of `among` (default: the initial members) agree on a leader.
    @discardableResult
    func waitForLeader(among: [String]? = nil, timeout: Double = defaultTimeout) throws -> String {
        var found: String?
        do {
            try waitUntil("a leader is elected", timeout: timeout, poll: 0.1) {
                found = agreedLeader(among: among ?? initialNames)?.name
                return found != nil
            }
        } catch {
            throw HarnessError("\(error)\n\(dump())")
        }
        return found!
    }

    /// Sends one request to the leader, following not-leader hints and retrying on every
    /// node that runs until one answers other than not-leader, a closed connection or a
    /// config change in progress. Returns that answer (ok or not).
    func request(_ op: String, _ fields: KeyValuePairs<String, String> = [:], timeout: Double = defaultTimeout) throws -> JSONObject {
        let deadline = Date().addingTimeInterval(timeout)
        var hint: String?
        var last = "no node answered"
        while Date() < deadline {
            var order = answering.map(\.name)
            if let h = hint ?? lastLeader, let i = order.firstIndex(of: h) { order.swapAt(0, i) }
            hint = nil
            for name in order {
                guard let node = nodes[name], node.isRunning, !node.paused else { continue }
                do {
                    let c = try NodeClient(path: node.clientSocket, timeout: 15)
                    let a = try c.call(op, fields)
                    switch a.error {
                    case "not-leader":
                        last = "\(name): \(a)"
                        if lastLeader == name { lastLeader = nil }
                        if let l = a.string("leader"), l != name {
                            hint = l
                        }
                    case "config-change-in-progress", "timeout", "shutting-down", "leadership-lost":
                        last = "\(name): \(a)"
                    default:
                        lastLeader = name
                        return a
                    }
                    if hint != nil { break }
                } catch {
                    last = "\(name): \(error)"
                }
            }
            if hint == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        throw HarnessError("\(op) \(fields) got no answer before \(Int(timeout)) s; last: \(last)\n\(dump())")
    }

    /// A put acknowledged by the leader; its index.
    @discardableResult
    func put(_ key: String, _ value: String) throws -> Int {
        let a = try request("put", ["key": key, "value": value])
        guard a.ok, let index = a.int("index") else { throw HarnessError("put \(key): \(a)") }
        return index
    }

    /// A linearizable get through the leader: the value, or nil for a missing key.
    func get(_ key: String) throws -> String? {
        let a = try request("get", ["key": key])
        guard a.ok else { throw HarnessError("get \(key): \(a)") }
        return a.string("value")
    }

    /// Waits until every node of `names` has applied at least `index` and all of them show
    /// the same applied index and digest. Returns that digest.
    @discardableResult
    func waitConverged(_ names: [String], atLeast index: Int, timeout: Double = defaultTimeout) throws -> String {
        var digest = ""
        do {
            try waitUntil("\(names) apply \(index) and agree", timeout: timeout, poll: 0.1) { note in
                let statuses = names.map { nodes[$0]?.status() }
                note = statuses.enumerated().map { "\(names[$0.offset]): applied \($0.element?.int("appliedIndex") ?? -1) digest \($0.element?.string("digest") ?? "?")" }.joined(separator: ", ")
                guard statuses.allSatisfy({ ($0?.int("appliedIndex") ?? -1) >= index }) else { return false }
                let applied = Set(statuses.map { $0!.int("appliedIndex")! })
                let digests = Set(statuses.map { $0!.string("digest") ?? "" })
                guard applied.count == 1, digests.count == 1 else { return false }
                digest = digests.first!
                return true
            }
        } catch {
            throw HarnessError("\(error)\n\(dump())")
        }
        return digest
    }
}
