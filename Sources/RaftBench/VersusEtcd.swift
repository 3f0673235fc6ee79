// raft-bench etcd: this cluster beside etcd 3.4 in one run (issue 12), as ratios.
//
// Three raft-node processes (the release build beside this binary; peers and clients over
// UNIX sockets, fsync on, defaults: heartbeat 50 ms, election 150 ms, a snapshot every 1,000
// entries) and three etcd processes (the `etcd` on PATH; peers and clients over loopback TCP,
// fsync on, heartbeat 30 ms and election 150 ms, snapshot-count its default 100,000, or 1,000
// with --snapshot-count 1000 for the second row of the issue), both on the same disk. One
// load generator, compiled here, drives both: closed-loop clients, each a thread with its
// own connection and one request in flight, putting values of a given size on keys of its
// own; ours through the client socket (JSON lines), etcd through its JSON gateway
// (HTTP/1.1 keep-alive POST /v3/kv/put, base64 keys and values), both to the leader.
// Rounds alternate between the systems; each figure is the median of the rounds. Server
// CPU per write is the three servers' user + system time (/proc/PID/stat) over a round,
// divided by its writes; the generator's own CPU (getrusage) is printed beside it and not
// counted as the servers'.
import Dispatch
import Foundation
import RaftNodeKit
import RaftNodeWire

#if canImport(Glibc)
import Glibc
#endif

struct VersusOptions {
    var dir: String
    var seconds = 5.0
    var rounds = 5
    /// etcd's --snapshot-count (nil: its default, 100,000).
    var etcdSnapshotCount: Int?
    /// Failover trials of each system (issue 12 asks for at least 30); 0 skips them.
    var failovers = 30
    /// Only the workloads whose label contains this (for profiling one of them).
    var only: String?
}

// MARK: One connection that puts

protocol PutConnection: AnyObject {
    /// One put, answered ok, or throws.
    func put(key: String, value: [UInt8]) throws
    /// One linearizable read (ours: `get`, by ReadIndex; etcd: a range of one key, which is
    /// linearizable unless asked to be serializable), answered ok, or throws.
    func get(key: String) throws
}

/// A raft-node client connection: a JSON line out, its answer back. With `peers` (each
/// member's client socket by name), a `not-leader` answer naming a leader moves the
/// connection there and asks again (nothing was done for it), counted in `redirects`.
final class OursConnection: PutConnection {
    var socket: LineSocket
    var id = 0
    let peers: [String: String]
    let redirects: SharedValue<Int>?

    init(path: String, peers: [String: String] = [:], redirects: SharedValue<Int>? = nil) throws {
        socket = try LineSocket(path: path)
        self.peers = peers
        self.redirects = redirects
    }

    func put(key: String, value: [UInt8]) throws {
        try ask("put") {
            var line = Array(#"{"id":\#($0),"op":"put","key":"\#(key)","value":""#.utf8)
            line += value
            line += Array("\"}\n".utf8)
            return line
        }
    }

    func get(key: String) throws {
        try ask("get") { Array(#"{"id":\#($0),"op":"get","key":"\#(key)"}"#.utf8) + [10] }
    }

    private func ask(_ what: String, _ line: (Int) -> [UInt8]) throws {
        for _ in 0..<10 {
            id += 1
            try socket.send(line(id))
            let a = try parseAnswer(socket.readLine())
            if a["ok"]?.boolValue == true { return }
            guard a["error"]?.stringValue == "not-leader", let leader = a["leader"]?.stringValue, let path = peers[leader] else {
                throw BenchError("\(what) answered \(a)")
            }
            socket = try LineSocket(path: path)
            redirects?.add(1)
        }
        throw BenchError("\(what): redirected ten times without reaching the leader")
    }
}


/// An HTTP/1.1 keep-alive connection to etcd's JSON gateway.
final class EtcdConnection: PutConnection {
    let fd: Int32
    let host: String
    private var buffer: [UInt8] = []

    init(port: UInt16) throws {
        guard let fd = connectLoopback(port) else { throw BenchError("connect to 127.0.0.1:\(port): errno \(errno)") }
        self.fd = fd
        host = "127.0.0.1:\(port)"
    }

    /// Convenience for one attempt with a bound on each send and receive.
    convenience init(port: UInt16, timeoutMs: Int) throws {
        try self.init(port: port)
        var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: __suseconds_t((timeoutMs % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func put(key: String, value: [UInt8]) throws {
        let body = Array(#"{"key":"\#(Data(key.utf8).base64EncodedString())","value":"\#(Data(value).base64EncodedString())"}"#.utf8)
        let (status, answer) = try post("/v3/kv/put", body)
        guard status == 200 else { throw BenchError("etcd put answered \(status): \(String(decoding: answer.prefix(200), as: UTF8.self))") }
    }

    func get(key: String) throws {
        let body = Array(#"{"key":"\#(Data(key.utf8).base64EncodedString())"}"#.utf8)
        let (status, answer) = try post("/v3/kv/range", body)
        guard status == 200 else { throw BenchError("etcd range answered \(status): \(String(decoding: answer.prefix(200), as: UTF8.self))") }
    }

    /// One request and its answer (status, body).
    func post(_ path: String, _ body: [UInt8]) throws -> (Int, [UInt8]) {
        let request = Array("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        try request.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw BenchError("send to etcd: errno \(errno)") }
                sent += n
            }
        }
        // Headers up to the blank line, then Content-Length bytes.
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = Self.find([13, 10, 13, 10], in: buffer).map { $0 + 4 }
            if headerEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let first = lines.first, let status = Int(first.split(separator: " ").dropFirst().first ?? "") else {
            throw BenchError("not an HTTP answer: \(head.prefix(100))")
        }
        var length = 0
        for l in lines.dropFirst() where l.lowercased().hasPrefix("content-length:") {
            length = Int(l.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        while buffer.count < headerEnd! + length { try fill() }
        let answer = Array(buffer[headerEnd!..<(headerEnd! + length)])
        buffer.removeFirst(headerEnd! + length)
        return (status, answer)
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw BenchError("etcd closed the connection (errno \(errno))") }
        buffer += chunk[..<n]
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}

// MARK: CPU

/// User + system CPU seconds of a process so far (its threads included).
func processCPUSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let paren = text.lastIndex(of: ")")
    else { return 0 }
    // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: paren)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// This process's own user + system CPU seconds (the load generator).
func selfCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
}

// MARK: The load generator

struct RoundResult {
    var rate: Double
    var p50: Double
    var p99: Double
    var writes: Int
    /// Server CPU per write (µs) and the generator's CPU per write (µs).
    var serverUs: Double
    var clientUs: Double
}

/// `clients` closed-loop clients for `seconds`, each on a connection `connect` makes.
func drive(
    clients: Int, seconds: Double, valueBytes: Int, reads: Bool = false, servers: [Int32], connect: @escaping @Sendable () throws -> PutConnection
) throws -> RoundResult {
    let results = Latencies()
    let group = DispatchGroup()
    let begin = DispatchSemaphore(value: 0)
    let connected = DispatchSemaphore(value: 0)
    let generator = TextGenerator()
    for c in 0..<clients {
        group.enter()
        let value = generator.text(seed: UInt64(c + 1), bytes: valueBytes)
        let t = Thread {
            defer { group.leave() }
            var lat: [Double] = []
            lat.reserveCapacity(1 << 16)
            do {
                let connection = try connect()
                connected.signal()
                begin.wait()
                let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
                var i = 0
                while true {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    if t0 >= end { break }
                    if reads {
                        try connection.get(key: "w\(c)-\(i % 1000)")
                    } else {
                        try connection.put(key: "w\(c)-\(i % 1000)", value: value)
                    }
                    lat.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    i += 1
                }
            } catch {
                connected.signal()
                results.fail("\(error)")
            }
            results.add(lat)
        }
        t.stackSize = 1 << 20
        t.start()
    }
    for _ in 0..<clients { connected.wait() }
    let cpu0 = servers.map(processCPUSeconds).reduce(0, +)
    let self0 = selfCPUSeconds()
    let t0 = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<clients { begin.signal() }
    group.wait()
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    let cpu = servers.map(processCPUSeconds).reduce(0, +) - cpu0
    let own = selfCPUSeconds() - self0
    if let e = results.errors.first { throw BenchError("a client failed: \(e)") }
    let sorted = results.values.sorted()
    let n = max(1, sorted.count)
    return RoundResult(
        rate: Double(sorted.count) / elapsed, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), writes: sorted.count,
        serverUs: cpu / Double(n) * 1e6, clientUs: own / Double(n) * 1e6)
}

// MARK: The two clusters

/// Three etcd members on loopback ports from `base`.
final class EtcdCluster {
    var members: [(name: String, child: ChildProcess, clientPort: UInt16)]
    private var arguments: [[String]] = []
    private var outputs: [String] = []
    private let binary: String

    init(binary: String, dir: String, base: UInt16, snapshotCount: Int?) throws {
        self.binary = binary
        let names = ["e1", "e2", "e3"]
        let peers = names.enumerated().map { "\($0.element)=http://127.0.0.1:\(base + UInt16(2 * $0.offset + 1))" }.joined(separator: ",")
        var started: [(String, ChildProcess, UInt16)] = []
        for (i, n) in names.enumerated() {
            let client = base + UInt16(2 * i)
            let peer = base + UInt16(2 * i + 1)
            let data = "\(dir)/\(n)"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            var args = [
                "--name", n, "--data-dir", data + "/data",
                "--listen-client-urls", "http://127.0.0.1:\(client)", "--advertise-client-urls", "http://127.0.0.1:\(client)",
                "--listen-peer-urls", "http://127.0.0.1:\(peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
                "--initial-cluster", peers, "--initial-cluster-state", "new", "--initial-cluster-token", "raft-bench",
                "--heartbeat-interval", "30", "--election-timeout", "150", "--log-level", "warn",
            ]
            if let s = snapshotCount { args += ["--snapshot-count", "\(s)"] }
            arguments.append(args)
            outputs.append(data + "/stderr.txt")
            started.append((n, try ChildProcess.spawn(path: binary, arguments: args, output: data + "/stderr.txt"), client))
        }
        members = started
    }

    /// SIGKILL to member `i`.
    func kill(_ i: Int) {
        members[i].child.signal(SIGKILL)
        _ = members[i].child.waitBlocking()
        close(members[i].child.stdinWriteEnd)
    }

    /// Member `i` started again on its data.
    func restart(_ i: Int) throws {
        members[i].child = try ChildProcess.spawn(path: binary, arguments: arguments[i], output: outputs[i] + ".\(Int(Date().timeIntervalSince1970))")
    }

    var pids: [Int32] { members.map(\.child.pid) }

    /// The client port of the leader all members name, once they do.
    func leaderPort(timeout: Double = 30) throws -> UInt16 {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var leaders: Set<String> = []
            var selfIDs: [String: UInt16] = [:]
            for m in members {
                guard let c = try? EtcdConnection(port: m.clientPort), let answer = try? c.post("/v3/maintenance/status", Array("{}".utf8)),
                    answer.0 == 200, let o = answer.1.withUnsafeBytes({ JSONValue.parse($0) })
                else { continue }
                if let l = o["leader"]?.stringValue { leaders.insert(l) }
                if let me = o["header"]?["member_id"]?.stringValue { selfIDs[me] = m.clientPort }
            }
            if leaders.count == 1, selfIDs.count == members.count, let port = selfIDs[leaders.first!] { return port }
            usleep(100_000)
        }
        throw BenchError("etcd elected no leader within \(Int(timeout)) s (see its stderr.txt files)")
    }

    func stop() {
        for m in members where m.child.reap() == nil {
            m.child.signal(SIGTERM)
            _ = m.child.waitBlocking()
            close(m.child.stdinWriteEnd)
        }
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

// MARK: The bench

func versusEtcdBench(_ o: VersusOptions) throws {
    let binary = try raftNodeBesideBench()
    guard let etcd = NodeBinaries.onPath("etcd") else {
        throw BenchError("no etcd on PATH: apt-get install -y etcd-server (Debian's etcd 3.4)")
    }
    let sockDir = try socketDirectory("rbe")
    try? FileManager.default.removeItem(atPath: o.dir)
    try FileManager.default.createDirectory(atPath: o.dir, withIntermediateDirectories: true)

    let names = ["n1", "n2", "n3"]
    let members = names.flatMap { ["--member", "\($0)=\(sockDir)/\($0).peer"] }
    var nodes: [NodeProcess] = []
    var etcdCluster: EtcdCluster?
    defer {
        for n in nodes { n.stop() }
        etcdCluster?.stop()
        try? FileManager.default.removeItem(atPath: sockDir)
    }
    for n in names {
        nodes.append(try NodeProcess(binary: binary, name: n, dataDir: "\(o.dir)/ours/\(n)", peer: "\(sockDir)/\(n).peer", client: "\(sockDir)/\(n).cli", extra: members))
    }
    let sockets = try nodes.map { try $0.waitUp() }
    let ourLeader = nodes[try waitForLeader(sockets, names: names)]
    let base = UInt16(20_000 + Int(getpid()) % 20_000)
    etcdCluster = try EtcdCluster(binary: etcd, dir: o.dir + "/etcd", base: base, snapshotCount: o.etcdSnapshotCount)
    let etcdPort = try etcdCluster!.leaderPort()
    let etcdPids = etcdCluster!.pids

    print("raft-bench etcd: \(binary) beside \(etcd) (\(etcdVersion(etcd)))")
    print("  ours: 3 raft-node, UNIX sockets, defaults (heartbeat 50 ms, election 150 ms, snapshot every 1000 entries), fsync on")
    print("  etcd: 3 members, loopback TCP, heartbeat 30 ms, election 150 ms, snapshot-count \(o.etcdSnapshotCount.map(String.init) ?? "100000 (its default)"), fsync on")
    print("  data in \(o.dir); \(ProcessInfo.processInfo.activeProcessorCount) CPUs; \(o.rounds) rounds of \(Int(o.seconds)) s, alternating, medians")
    print("  one load generator for both: closed-loop clients, a thread and a connection each, one put in flight, to the leader")

    let leaderSocket = ourLeader.client
    // A leader that changes during a round (an election on a loaded machine) is followed,
    // and said below the table, not a failed run.
    let peers = Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, $0.client) })
    let redirects = SharedValue(0)
    let workloads: [(String, Int, Int, Bool)] = [
        ("1 client, 100 B", 1, 100, false), ("64 clients, 100 B", 64, 100, false), ("64 clients, 1 KiB", 64, 1024, false),
        ("64 clients, linearizable reads", 64, 0, true),
    ]
    // Issue 12's goals, as ratios ours / etcd of the medians: ops/s at least, p50 and server
    // CPU per operation at most (nil: no goal on that figure).
    let goals: [String: (rate: Double?, p50: Double?, cpu: Double?)] = [
        "1 client, 100 B": (2.5, nil, 1.0 / 3), "64 clients, 100 B": (3, nil, 1.0 / 3), "64 clients, 1 KiB": (2.5, nil, 1.0 / 3),
        "64 clients, linearizable reads": (5, nil, nil),
    ]
    print("")
    print("| workload | ours: ops/s; p50; server CPU/op; generator CPU/op (median, min-max) | etcd: the same | ours / etcd: ops/s; p50; server CPU/op | goals |")
    print("|---|---|---|---|---|")
    for (label, clients, bytes, reading) in workloads where o.only.map({ label.contains($0) }) ?? true {
        var ours: [RoundResult] = []
        var theirs: [RoundResult] = []
        for round in 0..<o.rounds {
            // Alternate which goes first, so that neither always runs on a warmer machine.
            let order = round % 2 == 0 ? [true, false] : [false, true]
            for isOurs in order {
                if isOurs {
                    ours.append(
                        try drive(clients: clients, seconds: o.seconds, valueBytes: bytes, reads: reading, servers: nodes.map(\.pid)) {
                            try OursConnection(path: leaderSocket, peers: peers, redirects: redirects)
                        })
                } else {
                    theirs.append(
                        try drive(clients: clients, seconds: o.seconds, valueBytes: bytes, reads: reading, servers: etcdPids) {
                            try EtcdConnection(port: etcdPort)
                        })
                }
            }
        }
        func cell(_ r: [RoundResult]) -> String {
            func spread(_ xs: [Double], _ format: String) -> String {
                let s = xs.sorted()
                let m = String(format: format, median(s))
                return s.count < 2 ? m : m + " (" + String(format: format, s.first!) + "-" + String(format: format, s.last!) + ")"
            }
            return spread(r.map(\.rate), "%.0f") + "/s; " + spread(r.map(\.p50), "%.2f") + " ms; " + spread(r.map(\.serverUs), "%.0f")
                + " µs; " + String(format: "%.0f µs", median(r.map(\.clientUs)))
        }
        let rate = median(ours.map(\.rate)) / median(theirs.map(\.rate))
        let p50 = median(ours.map(\.p50)) / median(theirs.map(\.p50))
        let cpu = median(ours.map(\.serverUs)) / median(theirs.map(\.serverUs))
        var verdicts: [String] = []
        if let g = goals[label] {
            if let want = g.rate { verdicts.append(String(format: "ops/s >= %.1fx: %@", want, rate >= want ? "met" : "NOT met")) }
            if let want = g.cpu { verdicts.append(String(format: "CPU <= %.2fx: %@", want, cpu <= want ? "met" : "NOT met")) }
            if label == "1 client, 100 B" {
                let ms = median(ours.map(\.p50))
                verdicts.append(String(format: "p50 <= 0.5 ms: %@", ms <= 0.5 ? "met" : "NOT met"))
            }
        }
        print("| \(label) | \(cell(ours)) | \(cell(theirs)) | " + String(format: "**%.2f**; %.2f; **%.2f**", rate, p50, cpu) + " | " + verdicts.joined(separator: "; ") + " |")
    }
    print("")
    print("  (server CPU/op: the three servers' user+system time over a round / its operations; generator CPU/op: this process's, not counted as the servers')")
    if redirects.load() > 0 {
        print("  NOTE: \(redirects.load()) requests to ours were answered not-leader and asked again of the new leader: the leader changed during a round (see the nodes' node.log with --keep)")
    }

    let times = o.failovers
    guard times > 0 else { return }
    let (fa, fb) = try failoverRounds(times: times, ours: &nodes, names: names, binary: binary, members: members, etcd: etcdCluster!)
    func spread(_ xs: [Double]) -> (p50: Double, p90: Double, max: Double) {
        let s = xs.sorted()
        return (median(s), percentile(s, 0.9), s.last ?? .nan)
    }
    let x = spread(fa)
    let y = spread(fb)
    print("")
    print("Failover, SIGKILL of the leader to the next put a survivor acknowledges (\(times) each, alternating; p50 / p90 / max):")
    print(String(format: "  ours %.0f / %.0f / %.0f ms; etcd %.0f / %.0f / %.0f ms; ours / etcd %.2f / %.2f / %.2f", x.p50, x.p90, x.max, y.p50, y.p90, y.max, x.p50 / y.p50, x.p90 / y.p90, x.max / y.max))
    print("  goals: p50 <= 0.3x: \(x.p50 / y.p50 <= 0.3 ? "met" : "NOT met"); max <= 0.5x: \(x.max / y.max <= 0.5 ? "met" : "NOT met")")
    print("  ours: " + fa.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " ms; etcd: " + fb.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " ms")
}

func etcdVersion(_ etcd: String) -> String {
    let out = "/tmp/rbe-version-\(getpid()).txt"
    defer { try? FileManager.default.removeItem(atPath: out) }
    guard let child = try? ChildProcess.spawn(path: etcd, arguments: ["--version"], output: out) else { return "version unknown" }
    _ = child.waitBlocking()
    close(child.stdinWriteEnd)
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").first.map(String.init) ?? "version unknown"
}

// MARK: Failover

/// Milliseconds from a SIGKILL of the leader to the next put acknowledged by a survivor:
/// a client tries the survivors in turn, each attempt on a fresh connection bounded at
/// 100 ms (a put that waits on a dead leader is given up and tried again).
func failoverMs(kill: () -> Void, attempt: (Int) -> Bool, survivors: Int) -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    kill()
    var k = 0
    while true {
        if attempt(k % survivors) { return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 }
        k += 1
        if DispatchTime.now().uptimeNanoseconds - t0 > 30_000_000_000 { return .infinity }
        usleep(1000)
    }
}

/// `times` failovers of each system, alternating: kill the leader, time the next
/// acknowledged put, start the killed member again on its data, let it catch up.
func failoverRounds(
    times: Int, ours: inout [NodeProcess], names: [String], binary: String, members: [String], etcd: EtcdCluster
) throws -> (ours: [Double], etcd: [Double]) {
    var a: [Double] = []
    var b: [Double] = []
    for _ in 0..<times {
        // Ours.
        let sockets = try ours.map { try $0.waitUp() }
        let l = try waitForLeader(sockets, names: names)
        let survivors = ours.indices.filter { $0 != l }.map { ours[$0].client }
        let victim = ours[l]
        var n = 0
        a.append(failoverMs(kill: { victim.child.signal(SIGKILL); _ = victim.child.waitBlocking() }, attempt: { i in
            n += 1
            if case .answer(.written) = NodeConnection.request(.put(key: "failover", value: "\(n)"), to: survivors[i], timeoutMs: 100) { return true }
            return false
        }, survivors: survivors.count))
        close(victim.child.stdinWriteEnd)
        ours[l] = try NodeProcess(binary: binary, name: victim.name, dataDir: victim.dataDir, peer: victim.peer, client: victim.client, extra: members)
        _ = try ours[l].waitUp()
        usleep(1_000_000)
        // etcd.
        let port = try etcd.leaderPort()
        guard let e = etcd.members.firstIndex(where: { $0.clientPort == port }) else { throw BenchError("no etcd leader") }
        let ports = etcd.members.indices.filter { $0 != e }.map { etcd.members[$0].clientPort }
        b.append(failoverMs(kill: { etcd.kill(e) }, attempt: { i in
            guard let c = try? EtcdConnection(port: ports[i], timeoutMs: 100) else { return false }
            return (try? c.put(key: "failover", value: Array("x".utf8))) != nil
        }, survivors: ports.count))
        try etcd.restart(e)
        _ = try etcd.leaderPort()
        usleep(1_000_000)
    }
    return (a, b)
}
