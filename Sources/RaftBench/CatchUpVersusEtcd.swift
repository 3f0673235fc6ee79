// raft-bench catchup: a new member's catch-up, this cluster beside etcd 3.4, in one run.
//
// Both systems hold the same state: `--state-mib` (default 256) MiB of 64 KiB text values
// (TextGenerator, keys kv-00000...), loaded through each one's client protocol into a
// 3-member cluster. Then, `--rounds` times (default 3) for each system, alternating which
// goes first, a 4th member joins with an empty data dir and the clock runs until it has
// applied everything:
//   ours  from the `add` request to the leader (the new raft-node already started with
//         --join and answering `status`) to the new member's status showing appliedIndex >=
//         the leader's commitIndex (read once `add` is answered) with an equal digest;
//   etcd  from starting the new etcd (just after `etcdctl member add`, whose
//         ETCD_INITIAL_CLUSTER it is given, with --initial-cluster-state existing) to its
//         /v3/maintenance/status showing raftAppliedIndex >= the leader's raftIndex read
//         after `member add`; its revision and `endpoint hashkv` are then checked equal to
//         the leader's (not timed).
// After each round the member is removed (`remove`, `member remove`) and stopped, so each
// round adds a 4th member to the same 3-member cluster (named n4, n5, ... and e4, e5, ...).
//
// Two rows, each on clusters of its own (both systems' clusters up side by side):
//   loopback  peers over TCP on 127.0.0.1, directly;
//   link      every member's peer address is a listener of one userspace proxy in this
//             process (LinkProxy below: a thread per direction per connection) that forwards
//             to the member's real port; the bytes *toward the new member* are shaped by one
//             token bucket shared by all its connections (`--link-mbit`, default 1000, i.e.
//             125,000,000 bytes/s; no latency added), the others pass unshaped. Toward the
//             new member means on a connection dialled to it (client to server), or on one
//             it dialled (server to client; the dialling process is found from the socket's
//             inode in /proc/net/tcp and /proc/PID/fd). Both are needed to model one link
//             for both systems: our transport's connections are one-directional (a leader
//             writes only on connections it dialled), while etcd's rafthttp carries the
//             leader's appends on a long-polling stream that the *new member* dials to the
//             leader (and only snapshots and pipelined messages on connections to it).
//
// ours: raft-node (beside this binary), defaults (heartbeat 50 ms, election 150 ms,
//       snapshot threshold 1000 entries, amortised from 1 MiB), --request-timeout 120s so
//       that `add` is answered after a long catch-up; after the load a snapshot on every
//       node (as `raft-bench node` does), so that the new member catches up by snapshot.
// etcd: the `etcd` on PATH, heartbeat 30 ms, election 150 ms, --snapshot-count 1000 (to
//       match our threshold), everything else its defaults (--max-request-bytes 1.5 MiB is
//       enough for 64 KiB values).
// fsync on for both, data under .build-bench/catchup (deleted at the end unless --keep).
import Dispatch
import Foundation
import RaftNodeKit
import RaftNodeWire

#if canImport(Glibc)
import Glibc
#endif

struct CatchUpOptions {
    var dir: String
    var rounds = 3
    var stateMiB = 256
    var linkMbit = 1000
    var keep = false
    var valueBytes = 64 << 10
}

/// `raft-bench catchup [--dir DIR] [--rounds N] [--state-mib N] [--link-mbit N] [--keep]`:
/// parses its own options, runs, exits.
func catchUpCommand(_ arguments: [String], dir: String) -> Never {
    let usage = "usage: raft-bench catchup [--dir DIR] [--rounds N] [--state-mib N] [--link-mbit N] [--keep]"
    var o = CatchUpOptions(dir: dir + "/catchup")
    var args = arguments
    while !args.isEmpty {
        let flag = args.removeFirst()
        if flag == "--keep" {
            o.keep = true
            continue
        }
        guard ["--dir", "--rounds", "--state-mib", "--link-mbit"].contains(flag) else { fail("unknown option \(flag); \(usage)") }
        guard let value = args.first else { fail("\(flag) needs a value; \(usage)") }
        args.removeFirst()
        switch flag {
        case "--dir": o.dir = value + "/catchup"
        case "--rounds": guard let n = Int(value), n > 0 else { fail("--rounds needs a positive number") }; o.rounds = n
        case "--state-mib": guard let n = Int(value), n > 0 else { fail("--state-mib needs a positive number") }; o.stateMiB = n
        case "--link-mbit": guard let n = Int(value), n > 0 else { fail("--link-mbit needs a positive number") }; o.linkMbit = n
        default: fail("unknown option \(flag); \(usage)")
        }
    }
    ChildRegistry.shared.killOnSignals()
    let t0 = DispatchTime.now().uptimeNanoseconds
    do {
        try catchUpBench(o)
    } catch {
        ChildRegistry.shared.killAll()
        if !o.keep { try? FileManager.default.removeItem(atPath: o.dir) }
        fail("\(error)")
    }
    ChildRegistry.shared.killAll()  // none should be left; in case
    if o.keep {
        print("kept the data dirs (ours: node.log, events.jsonl; etcd: stderr.txt) in \(o.dir)")
    } else {
        try? FileManager.default.removeItem(atPath: o.dir)
    }
    print(String(format: "run took %.0f s", Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
    exit(0)
}

// MARK: Children

/// Every child this bench starts, so that an error or a signal ends them all: raft-node
/// also ends when its stdin closes, etcd does not.
final class ChildRegistry: @unchecked Sendable {
    static let shared = ChildRegistry()
    private let lock = NSLock()
    private var pids: Set<Int32> = []
    private var sources: [any DispatchSourceSignal] = []

    func add(_ pid: Int32) { lock.withLock { _ = pids.insert(pid) } }
    func remove(_ pid: Int32) { lock.withLock { _ = pids.remove(pid) } }

    /// SIGKILL to every child still registered, and reaps them.
    func killAll() {
        let all = lock.withLock {
            let p = pids
            pids = []
            return p
        }
        for pid in all { kill(pid, SIGKILL) }
        for pid in all {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// SIGINT, SIGTERM, SIGHUP: the children are killed, then this process exits.
    func killOnSignals() {
        for s in [SIGINT, SIGTERM, SIGHUP] {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [self] in
                killAll()
                FileHandle.standardError.write(Data("raft-bench: signal \(s); children killed\n".utf8))
                exit(128 + s)
            }
            source.resume()
            lock.withLock { sources.append(source) }
        }
    }
}

/// A raft-node of this bench: NodeProcess, registered, stopped once.
final class CatchUpNode {
    let process: NodeProcess
    private var stopped = false
    init(binary: String, name: String, dataDir: String, peer: String, client: String, extra: [String]) throws {
        process = try NodeProcess(binary: binary, name: name, dataDir: dataDir, peer: peer, client: client, extra: extra)
        ChildRegistry.shared.add(process.pid)
    }
    var name: String { process.name }
    var pid: Int32 { process.pid }
    func stop() {
        guard !stopped else { return }
        stopped = true
        process.stop()
        ChildRegistry.shared.remove(process.pid)
    }
}

/// One etcd member, listening for peers on `peerPort` and advertising `advertisedPeerPort`
/// (the same, or a proxy's listener).
final class EtcdMember {
    let name: String
    let dataDir: String
    let clientPort: UInt16
    let child: ChildProcess
    /// Hex, as `member add` prints it (for `member remove`).
    var memberID = ""
    private var ended: String?
    private var stopped = false

    init(
        binary: String, name: String, dataDir: String, clientPort: UInt16, peerPort: UInt16, advertisedPeerPort: UInt16,
        initialCluster: String, existing: Bool, logLevel: String
    ) throws {
        self.name = name
        self.dataDir = dataDir
        self.clientPort = clientPort
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let args = [
            "--name", name, "--data-dir", dataDir + "/data",
            "--listen-client-urls", "http://127.0.0.1:\(clientPort)", "--advertise-client-urls", "http://127.0.0.1:\(clientPort)",
            "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(advertisedPeerPort)",
            "--initial-cluster", initialCluster, "--initial-cluster-state", existing ? "existing" : "new",
            "--initial-cluster-token", "raft-bench-catchup",
            "--heartbeat-interval", "30", "--election-timeout", "150", "--snapshot-count", "1000", "--log-level", logLevel,
        ]
        child = try ChildProcess.spawn(path: binary, arguments: args, output: dataDir + "/stderr.txt")
        ChildRegistry.shared.add(child.pid)
    }

    var pid: Int32 { child.pid }
    var url: String { "http://127.0.0.1:\(clientPort)" }

    var isRunning: Bool {
        if ended == nil { ended = child.reap() }
        return ended == nil
    }

    /// SIGTERM, up to 10 s, then SIGKILL.
    func stop() {
        guard !stopped else { return }
        stopped = true
        if isRunning {
            child.signal(SIGTERM)
            let deadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
            while isRunning && DispatchTime.now().uptimeNanoseconds < deadline { usleep(10_000) }
            if isRunning {
                child.signal(SIGKILL)
                ended = child.waitBlocking()
            }
        }
        close(child.stdinWriteEnd)
        ChildRegistry.shared.remove(child.pid)
    }

    func stderrTail(_ lines: Int = 3) -> String {
        let text = (try? String(contentsOfFile: dataDir + "/stderr.txt", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }
}

struct EtcdStatus {
    var memberID: String
    var leader: String
    var raftIndex: Int
    var appliedIndex: Int
    var revision: Int
}

/// etcd's /v3/maintenance/status through its JSON gateway (int64s come as strings).
func etcdStatus(port: UInt16, timeoutMs: Int = 1000) -> EtcdStatus? {
    guard let c = try? EtcdConnection(port: port, timeoutMs: timeoutMs), let r = try? c.post("/v3/maintenance/status", Array("{}".utf8)),
        r.0 == 200, let o = r.1.withUnsafeBytes({ JSONValue.parse($0) })
    else { return nil }
    func n(_ v: JSONValue?) -> Int { v?.stringValue.flatMap { Int($0) } ?? v?.intValue.map { Int($0) } ?? 0 }
    return EtcdStatus(
        memberID: o["header"]?["member_id"]?.stringValue ?? "", leader: o["leader"]?.stringValue ?? "", raftIndex: n(o["raftIndex"]),
        appliedIndex: n(o["raftAppliedIndex"]), revision: n(o["header"]?["revision"]))
}

/// The index in `members` of the leader they all name.
func etcdLeader(_ members: [EtcdMember], timeout: Double = 30) throws -> Int {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let st = members.map { etcdStatus(port: $0.clientPort) }
        let leaders = Set(st.compactMap { $0?.leader })
        if st.allSatisfy({ $0 != nil }), leaders.count == 1, let i = st.firstIndex(where: { $0?.memberID == leaders.first }) { return i }
        usleep(50_000)
    }
    throw BenchError("etcd elected no leader within \(Int(timeout)) s")
}

/// Runs a tool to its end; its exit status and output (stdout and stderr).
func runTool(_ path: String, _ arguments: [String], scratch: String) throws -> (ok: Bool, output: String) {
    let out = scratch + "/tool-\(getpid())-\(DispatchTime.now().uptimeNanoseconds).txt"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let child = try ChildProcess.spawn(path: path, arguments: arguments, output: out)
    ChildRegistry.shared.add(child.pid)
    let how = child.waitBlocking()
    ChildRegistry.shared.remove(child.pid)
    close(child.stdinWriteEnd)
    return (how == "exit 0", (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
}

/// Binds `fd` to a port of 127.0.0.1 the system picks; that port, or nil.
func bindLoopbackAnyPort(_ fd: Int32) -> UInt16? {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    return ok ? UInt16(bigEndian: addr.sin_port) : nil
}

/// A port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket: errno \(errno)") }
    defer { close(fd) }
    guard let port = bindLoopbackAnyPort(fd) else { throw BenchError("bind to a free port: errno \(errno)") }
    return port
}

// MARK: The link: a userspace TCP proxy with one shared token bucket

/// Listeners on 127.0.0.1, each forwarding to a member's real port; a thread per direction
/// per connection. Bytes toward the new member (see the file's header) pay into one token
/// bucket; all bytes are counted.
final class LinkProxy: @unchecked Sendable {
    struct Counts {
        /// Toward the new member, shaped: on connections to it, and on connections it dialled.
        var towardNew = 0
        /// Of those, the bytes on connections the new member dialled.
        var towardNewOnItsDials = 0
        var fromNew = 0
        var other = 0
    }

    private let lock = NSLock()
    private let rate: Double
    private let burst: Double
    private var tokens: Double
    private var refilled = DispatchTime.now().uptimeNanoseconds
    private var newMemberPid: Int32 = 0
    private var counted = Counts()
    private var listeners: [UInt16: Int32] = [:]
    private var connections: Set<Int32> = []
    private var stopping = false

    init(bytesPerSecond: Double) {
        rate = bytesPerSecond
        burst = Double(128 << 10)
        tokens = burst
    }

    var counts: Counts { lock.withLock { counted } }
    func resetCounts() { lock.withLock { counted = Counts() } }
    func setNewMember(pid: Int32) { lock.withLock { newMemberPid = pid } }

    /// A new listener forwarding to `target`; its port.
    func listen(forwardingTo target: UInt16, targetIsNew: Bool) throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("proxy socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let port = bindLoopbackAnyPort(fd), Glibc.listen(fd, 128) == 0 else {
            close(fd)
            throw BenchError("proxy listen: errno \(errno)")
        }
        lock.withLock { listeners[port] = fd }
        let t = Thread { [self] in acceptLoop(fd: fd, port: port, target: target, targetIsNew: targetIsNew) }
        t.stackSize = 256 << 10
        t.start()
        return port
    }

    /// Stops accepting on `port` (its connections go on until they end).
    func closeListener(_ port: UInt16) {
        if let fd = lock.withLock({ listeners.removeValue(forKey: port) }) { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Every listener and connection shut down (their threads close them).
    func stop() {
        let (ls, cs) = lock.withLock {
            stopping = true
            let l = Array(listeners.values)
            listeners = [:]
            return (l, Array(connections))
        }
        for fd in ls + cs { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop(fd: Int32, port: UInt16, target: UInt16, targetIsNew: Bool) {
        defer { close(fd) }
        while true {
            var peer = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let c = withUnsafeMutablePointer(to: &peer) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &len) } }
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let dialler = UInt16(bigEndian: peer.sin_port)
            let pid = lock.withLock { newMemberPid }
            // Whether the new member dialled this one (only asked of the other listeners).
            let fromNew = !targetIsNew && pid > 0 && socketBelongs(to: pid, localPort: dialler, remotePort: port)
            guard let s = connectLoopback(target) else {
                close(c)
                continue
            }
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let refuse = lock.withLock {
                if stopping { return true }
                connections.insert(c)
                connections.insert(s)
                return false
            }
            if refuse {
                close(c)
                close(s)
                return
            }
            let pair = PumpPair(proxy: self, a: c, b: s)
            // Client to server: toward the new member if it is the target.
            let up: Direction = targetIsNew ? .towardNew(onItsDial: false) : (fromNew ? .fromNew : .other)
            // Server to client: toward the new member if it dialled.
            let down: Direction = targetIsNew ? .fromNew : (fromNew ? .towardNew(onItsDial: true) : .other)
            for (from, to, d) in [(c, s, up), (s, c, down)] {
                let t = Thread { [self] in
                    pump(from: from, to: to, direction: d)
                    pair.done()
                }
                t.stackSize = 256 << 10
                t.start()
            }
        }
    }

    enum Direction: Sendable {
        case towardNew(onItsDial: Bool)
        case fromNew
        case other
    }

    private func pump(from: Int32, to: Int32, direction: Direction) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        loop: while true {
            let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            switch direction {
            case let .towardNew(onItsDial):
                take(n)
                lock.withLock {
                    counted.towardNew += n
                    if onItsDial { counted.towardNewOnItsDials += n }
                }
            case .fromNew: lock.withLock { counted.fromNew += n }
            case .other: lock.withLock { counted.other += n }
            }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m < 0 && errno == EINTR { continue }
                if m <= 0 { break loop }
                sent += m
            }
        }
        shutdown(to, Int32(SHUT_WR))
        shutdown(from, Int32(SHUT_RD))
    }

    /// Waits as long as `n` bytes take at the link's rate, beyond a burst of 128 KiB: the
    /// bucket may go into debt, which the taker sleeps off, so that concurrent takers share
    /// the rate in the order they came.
    private func take(_ n: Int) {
        let wait: Double = lock.withLock {
            let now = DispatchTime.now().uptimeNanoseconds
            tokens = min(burst, tokens + Double(now - refilled) / 1e9 * rate)
            refilled = now
            tokens -= Double(n)
            return tokens < 0 ? -tokens / rate : 0
        }
        if wait > 0 { usleep(UInt32(wait * 1e6)) }
    }

    fileprivate func closePair(_ a: Int32, _ b: Int32) {
        lock.withLock {
            connections.remove(a)
            connections.remove(b)
        }
        close(a)
        close(b)
    }
}

/// The two descriptors of a proxied connection, closed once both directions ended.
final class PumpPair: @unchecked Sendable {
    private let lock = NSLock()
    private var ended = 0
    private let proxy: LinkProxy
    private let a: Int32
    private let b: Int32
    init(proxy: LinkProxy, a: Int32, b: Int32) {
        self.proxy = proxy
        self.a = a
        self.b = b
    }
    func done() {
        let last = lock.withLock {
            ended += 1
            return ended == 2
        }
        if last { proxy.closePair(a, b) }
    }
}


/// All of a file by read(2) to its end: Foundation reads a /proc file (size 0) only up to
/// its first page, and /proc/net/tcp is longer than that here.
func readWholeFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += chunk[..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// Whether process `pid` holds the TCP socket from 127.0.0.1:`localPort` to `remotePort`.
func socketBelongs(to pid: Int32, localPort: UInt16, remotePort: UInt16) -> Bool {
    var inodes: Set<Substring> = []
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in readWholeFile(file).split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, let l = f[1].split(separator: ":").last, let r = f[2].split(separator: ":").last,
                UInt16(l, radix: 16) == localPort, UInt16(r, radix: 16) == remotePort
            else { continue }
            inodes.insert(f[9])
        }
    }
    guard !inodes.isEmpty, let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return false }
    for fd in fds {
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"), link.hasPrefix("socket:[") else { continue }
        if inodes.contains(link.dropFirst("socket:[".count).dropLast()) { return true }
    }
    return false
}

// MARK: Loading etcd

/// Puts `count` values (the same keys and values as `load`) through `connections` keep-alive
/// connections to etcd's JSON gateway, one put in flight on each.
func loadEtcd(port: UInt16, count: Int, valueBytes: Int, connections: Int) throws -> (bytes: Int, seconds: Double) {
    let failed = Latencies()
    let group = DispatchGroup()
    let generator = TextGenerator()
    let started = DispatchTime.now().uptimeNanoseconds
    for c in 0..<connections {
        group.enter()
        let t = Thread {
            defer { group.leave() }
            do {
                let connection = try EtcdConnection(port: port)
                var i = c
                while i < count {
                    try connection.put(key: "kv-\(String(format: "%05d", i))", value: generator.text(seed: UInt64(i + 1), bytes: valueBytes))
                    i += connections
                }
            } catch {
                failed.fail("\(error)")
            }
        }
        t.stackSize = 1 << 20
        t.start()
    }
    group.wait()
    if let e = failed.errors.first { throw BenchError("etcd load: \(e)") }
    return (count * valueBytes, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
}

// MARK: One round

struct CatchUpRound {
    /// Seconds to caught up; nil when it did not.
    var seconds: Double?
    /// What went wrong, or a line of detail.
    var note: String
    var link = LinkProxy.Counts()
    /// etcd only: seconds to its state applied by its own log (a snapshot's install), which
    /// may come before its client port answers.
    var applied: Double?
}

/// The last snapshot-sent (to `peer`) or snapshot-installed event of a node: bytes, ms.
func lastSnapshotEvent(_ dataDir: String, installed: Bool, peer: String? = nil) -> (bytes: UInt64, ms: Int)? {
    guard let text = try? String(contentsOfFile: dataDir + "/events.jsonl", encoding: .utf8) else { return nil }
    var found: (UInt64, Int)?
    let kind = installed ? "snapshot-installed" : "snapshot-sent"
    for line in text.split(separator: "\n") where line.contains("\"\(kind)\"") {
        guard let e = NodeEventLine(parsing: String(line)) else { continue }
        switch e.event {
        case let .snapshotSent(to, _, _, bytes, ms) where !installed && (peer == nil || to == peer!): found = (bytes, ms)
        case let .snapshotInstalled(_, _, _, bytes, ms) where installed: found = (bytes, ms)
        default: break
        }
    }
    return found
}

func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

/// Our 3-node cluster of one row.
final class OursSide {
    let binary: String
    let dir: String
    let sockDir: String
    /// Prefixes the client sockets' names (both rows' sockets share one dir).
    let tag: String
    let names = ["n1", "n2", "n3"]
    let common = ["--request-timeout", "120s"]
    var members: [String] = []
    var nodes: [CatchUpNode] = []
    var sockets: [LineSocket] = []

    init(binary: String, dir: String, sockDir: String, tag: String, proxy: LinkProxy?) throws {
        self.binary = binary
        self.dir = dir
        self.sockDir = sockDir
        self.tag = tag
        var real: [UInt16] = []
        var advertised: [UInt16] = []
        for _ in names {
            let p = try freeLoopbackPort()
            real.append(p)
            advertised.append(try proxy?.listen(forwardingTo: p, targetIsNew: false) ?? p)
        }
        members = names.indices.flatMap { ["--member", "\(names[$0])=tcp://127.0.0.1:\(advertised[$0])"] }
        for (i, n) in names.enumerated() {
            nodes.append(
                try CatchUpNode(
                    binary: binary, name: n, dataDir: "\(dir)/\(n)", peer: "tcp://127.0.0.1:\(real[i])", client: "\(sockDir)/\(tag)-\(n).cli",
                    extra: members + common))
        }
        sockets = try nodes.map { try $0.process.waitUp() }
    }

    func stop() { for n in nodes { n.stop() } }

    /// A request to the leader, following not-leader answers.
    func callLeader(_ line: String) throws -> (answer: JSONValue, leader: Int) {
        var leader = try waitForLeader(sockets, names: names)
        var answer: JSONValue = .object([])
        for _ in 0..<5 {
            answer = try sockets[leader].call(line)
            guard answer["error"]?.stringValue == "not-leader" else { break }
            if let l = answer["leader"]?.stringValue, let i = names.firstIndex(of: l) {
                leader = i
            } else {
                leader = try waitForLeader(sockets, names: names)
            }
        }
        return (answer, leader)
    }

    /// A snapshot on every node (`snapshotOnEveryNode`); the seconds of its first round.
    func snapshotEveryNode() throws -> Double {
        try snapshotOnEveryNode(sockets, names: names).seconds
    }

    /// Adds `name`, times its catch-up, removes it again.
    func round(name: String, proxy: LinkProxy?, keep: Bool) throws -> CatchUpRound {
        let real = try freeLoopbackPort()
        let advertised = try proxy?.listen(forwardingTo: real, targetIsNew: true) ?? real
        defer { if advertised != real { proxy?.closeListener(advertised) } }
        let dataDir = "\(dir)/\(name)"
        let node = try CatchUpNode(
            binary: binary, name: name, dataDir: dataDir, peer: "tcp://127.0.0.1:\(real)", client: "\(sockDir)/\(tag)-\(name).cli",
            extra: ["--join"] + members + common)
        proxy?.setNewMember(pid: node.pid)
        defer {
            node.stop()
            proxy?.setNewMember(pid: 0)
            if !keep { try? FileManager.default.removeItem(atPath: dataDir) }
        }
        let socket = try node.process.waitUp()
        var leader = try waitForLeader(sockets, names: names)
        let leaderCPU0 = processCPUSeconds(nodes[leader].pid)
        proxy?.resetCounts()
        let t0 = DispatchTime.now().uptimeNanoseconds
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        var result = CatchUpRound(seconds: nil, note: "")
        do {
            let (answer, l) = try callLeader(#"{"id":7,"op":"add","node":"\#(name)","address":"tcp://127.0.0.1:\#(advertised)"}"#)
            leader = l
            let addSeconds = now()
            guard answer["ok"]?.boolValue == true else { throw BenchError("add answered \(answer) after \(String(format: "%.1f", addSeconds)) s") }
            let commit = int(try status(sockets[leader])["commitIndex"])
            while true {
                let s = try status(socket)
                if int(s["appliedIndex"]) >= commit, let d = s["digest"]?.stringValue {
                    let l = try status(sockets[leader])
                    guard d == l["digest"]?.stringValue else { throw BenchError("\(name)'s digest \(d) differs from the leader's \(l["digest"]?.stringValue ?? "")") }
                    result.seconds = now()
                    break
                }
                guard now() < 150 else { throw BenchError("\(name) did not catch up in 150 s (applied \(int(s["appliedIndex"])) of \(commit))") }
                usleep(5_000)
            }
            result.link = proxy?.counts ?? LinkProxy.Counts()
            let cpuNew = processCPUSeconds(node.pid)
            let cpuLeader = processCPUSeconds(nodes[leader].pid) - leaderCPU0
            var detail = String(format: "add answered %.2f s; applied %d; CPU new %.2f s, leader %.2f s; %.0f MiB peak RSS", addSeconds, commit, cpuNew, cpuLeader, Double(node.process.procStatusKiB("VmHWM")) / 1024)
            if let sent = lastSnapshotEvent(nodes[leader].process.dataDir, installed: false, peer: name) {
                detail += "; leader's snapshot-sent \(mb(Int(sent.bytes))) in \(sent.ms) ms"
            }
            if let got = lastSnapshotEvent(dataDir, installed: true) {
                detail += "; \(name)'s snapshot-installed \(mb(Int(got.bytes))) in \(got.ms) ms"
            }
            // The node's own account of the install: "...: last chunk after X ms, state
            // restored Y ms after the last chunk, file durable Z ms after that; N ms in all".
            let log = (try? String(contentsOfFile: dataDir + "/node.log", encoding: .utf8)) ?? ""
            if let line = log.split(separator: "\n").last(where: { $0.contains("last chunk after") }), let from = line.range(of: "last chunk after") {
                detail += " (\(line[from.lowerBound...]))"
            }
            result.note = detail
        } catch {
            result.note = "FAILED: \(error)"
            result.link = proxy?.counts ?? LinkProxy.Counts()
        }
        let (removed, _) = try callLeader(#"{"id":8,"op":"remove","node":"\#(name)"}"#)
        guard removed["ok"]?.boolValue == true else { throw BenchError("remove \(name) answered \(removed)") }
        return result
    }
}

/// etcd's 3-member cluster of one row.
final class EtcdSide {
    let binary: String
    let etcdctl: String
    let dir: String
    var members: [EtcdMember] = []

    init(binary: String, etcdctl: String, dir: String, proxy: LinkProxy?) throws {
        self.binary = binary
        self.etcdctl = etcdctl
        self.dir = dir
        let names = ["e1", "e2", "e3"]
        var ports: [(client: UInt16, peer: UInt16, advertised: UInt16)] = []
        for _ in names {
            let peer = try freeLoopbackPort()
            ports.append((try freeLoopbackPort(), peer, try proxy?.listen(forwardingTo: peer, targetIsNew: false) ?? peer))
        }
        let cluster = names.indices.map { "\(names[$0])=http://127.0.0.1:\(ports[$0].advertised)" }.joined(separator: ",")
        for (i, n) in names.enumerated() {
            members.append(
                try EtcdMember(
                    binary: binary, name: n, dataDir: "\(dir)/\(n)", clientPort: ports[i].client, peerPort: ports[i].peer,
                    advertisedPeerPort: ports[i].advertised, initialCluster: cluster, existing: false, logLevel: "warn"))
        }
        _ = try etcdLeader(members)
    }

    var endpoints: String { members.map(\.url).joined(separator: ",") }

    func stop() { for m in members { m.stop() } }

    /// `member add`, start the member, time it to applied, check it, `member remove`.
    func round(name: String, proxy: LinkProxy?, keep: Bool) throws -> CatchUpRound {
        let clientPort = try freeLoopbackPort()
        let real = try freeLoopbackPort()
        let advertised = try proxy?.listen(forwardingTo: real, targetIsNew: true) ?? real
        defer { if advertised != real { proxy?.closeListener(advertised) } }
        _ = try etcdLeader(members)
        // etcd refuses a member add until every member has been connected for 5 s
        // (--strict-reconfig-check): "unhealthy cluster" is waited out.
        var added = (ok: false, output: "")
        for _ in 0..<40 {
            added = try runTool(etcdctl, ["--endpoints=\(endpoints)", "member", "add", name, "--peer-urls=http://127.0.0.1:\(advertised)"], scratch: dir)
            guard !added.ok, added.output.contains("unhealthy cluster") else { break }
            usleep(500_000)
        }
        guard added.ok, let idLine = added.output.split(separator: "\n").first(where: { $0.hasPrefix("Member ") }),
            let clusterLine = added.output.split(separator: "\n").first(where: { $0.hasPrefix("ETCD_INITIAL_CLUSTER=") })
        else { throw BenchError("etcdctl member add: \(added.output)") }
        let memberID = String(idLine.split(separator: " ")[1])
        let initialCluster = String(clusterLine.dropFirst("ETCD_INITIAL_CLUSTER=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let leader = members[try etcdLeader(members)]
        guard let start = etcdStatus(port: leader.clientPort) else { throw BenchError("no status from etcd's leader") }
        let leaderCPU0 = processCPUSeconds(leader.pid)
        let dataDir = "\(dir)/\(name)"
        proxy?.resetCounts()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let startDate = Date()
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        // Info level on the new member only: it says whether a snapshot came, and when.
        let member = try EtcdMember(
            binary: binary, name: name, dataDir: dataDir, clientPort: clientPort, peerPort: real, advertisedPeerPort: advertised,
            initialCluster: initialCluster, existing: true, logLevel: "info")
        member.memberID = memberID
        proxy?.setNewMember(pid: member.pid)
        defer {
            member.stop()
            proxy?.setNewMember(pid: 0)
            if !keep { try? FileManager.default.removeItem(atPath: dataDir) }
        }
        var result = CatchUpRound(seconds: nil, note: "")
        do {
            var firstAnswer: Double?
            while true {
                if let s = etcdStatus(port: clientPort, timeoutMs: 2000) {
                    if firstAnswer == nil { firstAnswer = now() }
                    if s.appliedIndex >= start.raftIndex {
                        result.seconds = now()
                        break
                    }
                }
                guard member.isRunning else { throw BenchError("\(name) ended: \(member.stderrTail())") }
                guard now() < 150 else { throw BenchError("\(name) did not catch up in 150 s") }
                usleep(5_000)
            }
            result.link = proxy?.counts ?? LinkProxy.Counts()
            let cpuNew = processCPUSeconds(member.pid)
            let cpuLeader = processCPUSeconds(leader.pid) - leaderCPU0
            var peakKiB = -1
            if let text = try? String(contentsOfFile: "/proc/\(member.pid)/status", encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
            {
                peakKiB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
            }
            // Not timed: the revision and the key-value hash equal to the leader's.
            var checks: [String] = []
            if let a = etcdStatus(port: clientPort, timeoutMs: 5000), let b = etcdStatus(port: leader.clientPort, timeoutMs: 5000) {
                checks.append(a.revision == b.revision ? "revision \(a.revision) equal" : "REVISION \(a.revision) vs leader's \(b.revision)")
            }
            let hashes = try runTool(etcdctl, ["--endpoints=\(leader.url),\(member.url)", "--command-timeout=60s", "endpoint", "hashkv", "-w", "json"], scratch: dir)
            let found = hashes.output.components(separatedBy: "\"hash\":").dropFirst().map { $0.prefix { $0.isNumber } }
            checks.append(found.count == 2 ? (found[0] == found[1] ? "hashkv equal" : "HASHKV DIFFERS \(found)") : "hashkv unreadable: \(hashes.output.prefix(200))")
            let log = (try? String(contentsOfFile: dataDir + "/stderr.txt", encoding: .utf8)) ?? ""
            let bySnapshot = log.contains("database snapshot") || log.contains("applied snapshot")
            var how = bySnapshot ? "caught up by a snapshot" : "caught up from the log (no snapshot in its log)"
            // Its log's account (local time, microseconds): the snapshot's transfer, and when
            // the state was applied, which may be before its client port serves (once it has
            // published itself through the cluster).
            let lines = log.split(separator: "\n")
            if let saved = lines.last(where: { $0.contains("successfully received and saved database snapshot") }), let took = saved.range(of: "took: ") {
                how += "; received and saved it in \(saved[took.upperBound...].prefix { $0 != "]" })"
            }
            if let applied = lines.last(where: { $0.contains("finished applying incoming snapshot") }), let at = etcdLogDate(applied) {
                result.applied = at.timeIntervalSince(startDate)
                how += String(format: ", state applied %.2f s after the start", result.applied!)
            }
            result.note = String(
                format: "first status answer %.2f s; applied %d; CPU new %.2f s, leader %.2f s; %.0f MiB peak RSS; %@; %@", firstAnswer ?? .nan, start.raftIndex, cpuNew, cpuLeader,
                Double(peakKiB) / 1024, checks.joined(separator: ", "), how)
        } catch {
            result.note = "FAILED: \(error)"
            result.link = proxy?.counts ?? LinkProxy.Counts()
        }
        let removed = try runTool(etcdctl, ["--endpoints=\(endpoints)", "member", "remove", memberID], scratch: dir)
        guard removed.ok else { throw BenchError("etcdctl member remove \(memberID): \(removed.output)") }
        return result
    }
}

/// The time of an etcd 3.4 (capnslog) log line: `2026-12-07 01:50:23.927677 I | ...`, local time.
func etcdLogDate(_ line: Substring) -> Date? {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone.current
    f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
    return f.date(from: String(line.prefix(26)))
}

// MARK: The bench

func catchUpBench(_ o: CatchUpOptions) throws {
    let binary = try raftNodeBesideBench()
    guard let etcd = NodeBinaries.onPath("etcd"), let etcdctl = NodeBinaries.onPath("etcdctl") else {
        throw BenchError("no etcd and etcdctl on PATH: apt-get install -y etcd-server etcd-client (Debian's etcd 3.4)")
    }
    let sockDir = try socketDirectory("rbc")
    defer { try? FileManager.default.removeItem(atPath: sockDir) }
    try? FileManager.default.removeItem(atPath: o.dir)
    try FileManager.default.createDirectory(atPath: o.dir, withIntermediateDirectories: true)

    let count = max(1, (o.stateMiB << 20) / o.valueBytes)
    let stateBytes = count * o.valueBytes
    let linkRate = Double(o.linkMbit) * 1e6 / 8
    print("raft-bench catchup: \(binary) beside \(etcd) (\(etcdVersion(etcd)))")
    print(String(format: "  state: %d values of %d KiB of text (TextGenerator), %.0f MiB; a 4th member joins, %d rounds each, alternating, medians", count, o.valueBytes >> 10, Double(stateBytes) / Double(1 << 20), o.rounds))
    print("  ours: 3 raft-node, peers over TCP, defaults (heartbeat 50 ms, election 150 ms, snapshot threshold 1000, amortised from 1 MiB), --request-timeout 120s;")
    print("        a snapshot on every node after the load; clock from the `add` request (new node already up with --join) to its appliedIndex >= the leader's commitIndex, digest equal")
    print("  etcd: 3 members, peers over TCP, heartbeat 30 ms, election 150 ms, --snapshot-count 1000 (our threshold), other flags default;")
    print("        clock from starting the new member (after `member add`) to its raftAppliedIndex >= the leader's raftIndex after `member add`")
    print("  link: every member's peer address a listener of one proxy in this process; bytes toward the new member (on connections to it, or dialled by it)")
    print(String(format: "        through one token bucket at %.0f bytes/s (%d Mbit/s), no latency added; other bytes unshaped", linkRate, o.linkMbit))
    print("  data in \(o.dir), fsync on; \(ProcessInfo.processInfo.activeProcessorCount) CPUs")

    struct Row {
        var label: String
        var ours: [CatchUpRound]
        var etcd: [CatchUpRound]
        var link: Bool
    }
    var rows: [Row] = []
    for link in [false, true] {
        let label = link ? "through a \(o.linkMbit) Mbit/s link to the new member" : "loopback TCP"
        let rowDir = o.dir + (link ? "/link" : "/loopback")
        print("")
        print("\(label):")
        let proxy = link ? LinkProxy(bytesPerSecond: linkRate) : nil
        var ours: OursSide?
        var theirs: EtcdSide?
        defer {
            ours?.stop()
            theirs?.stop()
            proxy?.stop()
            if !o.keep { try? FileManager.default.removeItem(atPath: rowDir) }
        }
        ours = try OursSide(binary: binary, dir: rowDir + "/ours", sockDir: sockDir, tag: link ? "link" : "lo", proxy: proxy)
        theirs = try EtcdSide(binary: etcd, etcdctl: etcdctl, dir: rowDir + "/etcd", proxy: proxy)
        let a = ours!
        let b = theirs!
        let leader = try waitForLeader(a.sockets, names: a.names)
        let (loaded, oursLoad) = try load(socket: a.nodes[leader].process.client, count: count, valueBytes: o.valueBytes, window: 16)
        let snap = try a.snapshotEveryNode()
        let etcdLeaderIndex = try etcdLeader(b.members)
        let (_, etcdLoad) = try loadEtcd(port: b.members[etcdLeaderIndex].clientPort, count: count, valueBytes: o.valueBytes, connections: 16)
        let st = try status(a.sockets[try waitForLeader(a.sockets, names: a.names)])
        let es = etcdStatus(port: b.members[try etcdLeader(b.members)].clientPort)
        print(String(format: "  loaded: ours %.1f s (16 puts in flight on one connection, %.0f MB/s), then a snapshot on every node %.1f s (commitIndex %d, snapshotIndex %d)", oursLoad, Double(loaded) / 1e6 / oursLoad, snap, int(st["commitIndex"]), int(st["snapshotIndex"])))
        print(String(format: "          etcd %.1f s (16 connections, one put in flight each, %.0f MB/s); raftIndex %d, revision %d", etcdLoad, Double(loaded) / 1e6 / etcdLoad, es?.raftIndex ?? -1, es?.revision ?? -1))

        var oursRounds: [CatchUpRound] = []
        var etcdRounds: [CatchUpRound] = []
        for r in 0..<o.rounds {
            for isOurs in r % 2 == 0 ? [true, false] : [false, true] {
                if isOurs {
                    let x = try a.round(name: "n\(4 + r)", proxy: proxy, keep: o.keep)
                    oursRounds.append(x)
                    print("  ours round \(r + 1): " + (x.seconds.map { String(format: "%.2f s", $0) } ?? "no catch-up") + "; \(x.note)" + (link ? "; toward it \(mb(x.link.towardNew))" : ""))
                } else {
                    let x = try b.round(name: "e\(4 + r)", proxy: proxy, keep: o.keep)
                    etcdRounds.append(x)
                    print("  etcd round \(r + 1): " + (x.seconds.map { String(format: "%.2f s", $0) } ?? "no catch-up") + "; \(x.note)"
                        + (link ? "; toward it \(mb(x.link.towardNew)) (\(mb(x.link.towardNewOnItsDials)) on connections it dialled)" : ""))
                }
                usleep(500_000)
            }
        }
        rows.append(Row(label: label, ours: oursRounds, etcd: etcdRounds, link: link))
    }

    func figures(_ rs: [CatchUpRound]) -> (median: Double?, text: String) {
        let ok = rs.compactMap(\.seconds)
        let each = rs.map { $0.seconds.map { String(format: "%.2f", $0) } ?? "failed" }.joined(separator: ", ")
        return (ok.isEmpty ? nil : median(ok), each + (ok.count < rs.count ? " (\(ok.count) of \(rs.count) caught up)" : ""))
    }
    print("")
    print(String(format: "Catch-up of a new 4th member, %.0f MiB of %d KiB text values (etcd with --snapshot-count 1000), medians of %d rounds:", Double(stateBytes) / Double(1 << 20), o.valueBytes >> 10, o.rounds))
    print("")
    print("| catch-up | ours, median | etcd, median | ours / etcd | ours, each round (s) | etcd, each round (s) |")
    print("|---|---|---|---|---|---|")
    for row in rows {
        let a = figures(row.ours)
        let b = figures(row.etcd)
        let ratio = a.median.flatMap { x in b.median.map { String(format: "**%.2f**", x / $0) } } ?? "n/a"
        print("| \(row.label) | \(a.median.map { String(format: "%.2f s", $0) } ?? "no catch-up") | \(b.median.map { String(format: "%.2f s", $0) } ?? "no catch-up") | \(ratio) | \(a.text) | \(b.text) |")
    }
    print("")
    print("etcd's own log (snapshot received, state applied; its client port answers only once it has also published itself through the cluster):")
    for row in rows {
        let xs = row.etcd.compactMap(\.applied)
        let ours = row.ours.compactMap(\.seconds)
        guard !xs.isEmpty else {
            print("  \(row.label): no snapshot install in its log")
            continue
        }
        let ratio = ours.isEmpty ? "n/a" : String(format: "%.2f", median(ours) / median(xs))
        print(String(format: "  %@: median %.2f s (each: %@); ours / that %@", row.label, median(xs), row.etcd.map { $0.applied.map { String(format: "%.2f", $0) } ?? "-" }.joined(separator: ", "), ratio))
    }
    if let row = rows.first(where: \.link) {
        func bytes(_ rs: [CatchUpRound]) -> String {
            rs.map { String(format: "%.1f", Double($0.link.towardNew) / 1e6) }.joined(separator: ", ") + " MB"
        }
        print("")
        print(String(format: "Bytes toward the new member through the link, each round (state %.1f MB): ours %@; etcd %@", Double(stateBytes) / 1e6, bytes(row.ours), bytes(row.etcd)))
        func other(_ rs: [CatchUpRound]) -> String {
            rs.map { String(format: "%.2f / %.2f", Double($0.link.fromNew) / 1e6, Double($0.link.other) / 1e6) }.joined(separator: ", ") + " MB"
        }
        print("  (unshaped, from the new member / among the others: ours \(other(row.ours)); etcd \(other(row.etcd)))")
    }
}
