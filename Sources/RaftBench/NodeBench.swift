// raft-bench node: the node bench of issue 4, item 7, against real raft-node processes.
//
// 1. Writes: a 3-node cluster of the raft-node built beside this binary (fsync always on),
//    peers and clients over UNIX sockets; writes a second and p50/p99 latency with 1 client
//    and with 64 clients, each client on its own connection with one request in flight
//    (closed loop), 100-byte values, for a fixed number of seconds each.
// 2. Catch-up: 4,096 values of 64 KiB of text-like data (256 MiB of state) loaded through
//    the client protocol with a window of requests in flight, a snapshot taken on every
//    node, then n4 started with --join and added; the time from `add` to n4 applied through
//    the leader's commit index with an equal digest, and n4's peak RSS (VmHWM), beside the
//    time zlib alone takes to inflate the leader's snapshot body and to write the snapshot
//    file once (with fsync), measured in the same run.
import CZlib
import Dispatch
import Foundation
import RaftNodeKit
import RaftNodeWire
import RaftStorage

#if canImport(Glibc)
import Glibc
#endif

struct NodeBenchOptions {
    /// Data dirs (on the disk being measured, not a tmpfs).
    var dir: String
    var writeSeconds = 5.0
    var values = 4096
    var valueBytes = 64 << 10
    /// Passed to every node as --snapshot-chunk when set (the node's default is 64KiB).
    var snapshotChunk: String?
}

// MARK: A client connection: JSON lines over a UNIX socket, blocking.

/// The kit's connection, as the bench uses it: raw lines out, raw lines back.
final class LineSocket: @unchecked Sendable {
    // One thread writes and one reads at most; the socket itself is safe for that.
    let connection: NodeConnection

    init(path: String) throws {
        connection = try NodeConnection(path: path, timeoutMs: 60_000)
    }

    func send(_ line: [UInt8]) throws { try connection.write(line) }
    func send(_ line: String) throws { try send(Array(line.utf8)) }

    /// The next line, without its newline.
    func readLine() throws -> [UInt8] { try connection.readLineBytes() }

    /// Sends a request and waits for its answer (one in flight).
    func call(_ line: String) throws -> JSONValue {
        try send(line + "\n")
        return try parseAnswer(readLine())
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// An answer line read by the wire module's parser (the harness's and the checker's).
func parseAnswer(_ line: [UInt8]) throws -> JSONValue {
    guard let o = line.withUnsafeBytes({ JSONValue.parse($0) }), case .object = o else {
        throw BenchError("not a JSON object: \(String(decoding: line.prefix(200), as: UTF8.self))")
    }
    return o
}

func int(_ v: JSONValue?) -> Int { v?.intValue.map { Int($0) } ?? -1 }

// MARK: Processes

final class NodeProcess {
    let name: String
    let dataDir: String
    let peer: String
    let client: String
    /// The kit's child: a stdin pipe held here (--exit-on-stdin-close), its own group.
    let child: ChildProcess
    private var ended: String?

    init(binary: String, name: String, dataDir: String, peer: String, client: String, extra: [String]) throws {
        self.name = name
        self.dataDir = dataDir
        self.peer = peer
        self.client = client
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        child = try ChildProcess.spawn(
            path: binary, arguments: ["--name", name, "--data-dir", dataDir, "--listen", peer, "--client", client, "--exit-on-stdin-close"] + extra,
            output: dataDir + "/stderr.txt")
    }

    var pid: Int32 { child.pid }

    var isRunning: Bool {
        if ended == nil { ended = child.reap() }
        return ended == nil
    }

    /// Waits for the client socket to answer `status`.
    func waitUp(timeout: Double = 20) throws -> LineSocket {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let s = try? LineSocket(path: client), (try? s.call(#"{"id":0,"op":"status"}"#)) != nil { return s }
            guard isRunning else { throw BenchError("\(name) ended (\(ended ?? "?")); see \(dataDir)/stderr.txt") }
            guard Date() < deadline else { throw BenchError("\(name) did not answer on \(client)") }
            usleep(20_000)
        }
    }

    func stop() {
        if isRunning {
            child.signal(SIGTERM)
            ended = child.waitBlocking()
        }
        close(child.stdinWriteEnd)
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    func procStatusKiB(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        return -1
    }
}

func status(_ s: LineSocket) throws -> JSONValue { try s.call(#"{"id":0,"op":"status"}"#) }

/// Waits for a leader all members agree on; returns its index in `nodes`.
func waitForLeader(_ sockets: [LineSocket], names: [String], timeout: Double = 20) throws -> Int {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let st = try sockets.map(status)
        let leaders = Set(st.compactMap { $0["leader"]?.stringValue })
        if leaders.count == 1, let l = leaders.first, st.allSatisfy({ $0["leader"]?.stringValue != nil }),
            let i = names.firstIndex(of: l), st[i]["role"]?.stringValue == "leader"
        {
            return i
        }
        usleep(50_000)
    }
    throw BenchError("no leader elected")
}

// MARK: Writes

final class Latencies: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [Double] = []
    private var failures: [String] = []

    func add(_ l: [Double]) { lock.withLock { all += l } }
    func fail(_ f: String) { lock.withLock { failures.append(f) } }
    var values: [Double] { lock.withLock { all } }
    var errors: [String] { lock.withLock { failures } }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)]
}

/// `clients` connections, one request in flight each, for `seconds`: the load generator
/// of `raft-bench etcd` (`drive`), on our client socket.
func benchWrites(socket: String, clients: Int, seconds: Double) throws -> (rate: Double, p50: Double, p99: Double, count: Int) {
    let r = try drive(clients: clients, seconds: seconds, valueBytes: 100, servers: []) { try OursConnection(path: socket) }
    return (r.rate, r.p50, r.p99, r.writes)
}

// MARK: Load

/// Text-like bytes (words of a Zipf-ish vocabulary, spaces, some punctuation): as
/// compressible as prose, and safe inside a JSON string as they are.
struct TextGenerator {
    let words: [[UInt8]]

    init() {
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        var w: [[UInt8]] = []
        for _ in 0..<4000 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let length = 2 + Int((x >> 33) % 9)
            var word: [UInt8] = []
            for _ in 0..<length {
                x = x &* 6364136223846793005 &+ 1442695040888963407
                word.append(UInt8(ascii: "a") + UInt8((x >> 33) % 26))
            }
            w.append(word)
        }
        words = w
    }

    func text(seed: UInt64, bytes: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 16)
        var x = seed &* 0x2545_f491_4f6c_dd1d | 1
        while out.count < bytes {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let r = Double((x >> 11) & 0xf_ffff) / Double(0x10_0000)
            out += words[Int(r * r * r * Double(words.count))]
            switch (x >> 40) % 16 {
            case 0: out += Array(", ".utf8)
            case 1: out += Array(". ".utf8)
            default: out.append(UInt8(ascii: " "))
            }
        }
        return Array(out.prefix(bytes))
    }
}

/// Puts `count` values through one connection with up to `window` requests in flight.
func load(socket: String, count: Int, valueBytes: Int, window: Int) throws -> (bytes: Int, seconds: Double) {
    let writer = try LineSocket(path: socket)
    let slots = DispatchSemaphore(value: window)
    let failed = Latencies()
    let generator = TextGenerator()
    let started = DispatchTime.now().uptimeNanoseconds
    let sender = Thread {
        for i in 0..<count {
            slots.wait()
            var line = Array(#"{"id":\#(i),"op":"put","key":"kv-\#(String(format: "%05d", i))","value":""#.utf8)
            line += generator.text(seed: UInt64(i + 1), bytes: valueBytes)
            line += Array("\"}\n".utf8)
            do { try writer.send(line) } catch {
                failed.fail("\(error)")
                return
            }
        }
    }
    sender.start()
    for _ in 0..<count {
        let a = try parseAnswer(writer.readLine())
        guard a["ok"]?.boolValue == true else { throw BenchError("load: put answered \(a)") }
        slots.signal()
    }
    if let e = failed.errors.first { throw BenchError("load: \(e)") }
    return (count * valueBytes, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
}

// MARK: zlib alone

/// Inflates `body` (a zlib stream) in memory into a reused 256 KiB buffer; the bytes out.
func inflateAlone(_ body: [UInt8]) throws -> Int {
    var stream = z_stream()
    guard czlib_inflate_init(&stream) == Z_OK else { throw BenchError("inflateInit failed") }
    defer { inflateEnd(&stream) }
    let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
    defer { out.deallocate() }
    var total = 0
    try body.withUnsafeBytes { raw in
        stream.next_in = UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(raw.count)
        while true {
            stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            let r = inflate(&stream, Z_NO_FLUSH)
            total += out.count - Int(stream.avail_out)
            if r == Z_STREAM_END { break }
            guard r == Z_OK else { throw BenchError("inflate failed: \(r)") }
        }
    }
    return total
}

/// Writes `bytes` to a new file at `path` in 1 MiB writes, then fsyncs it.
func writeFileOnce(_ bytes: [UInt8], to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { throw BenchError("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    try bytes.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = write(fd, raw.baseAddress! + off, min(1 << 20, raw.count - off))
            guard n > 0 else { throw BenchError("write \(path): \(String(cString: strerror(errno)))") }
            off += n
        }
    }
    guard fsync(fd) == 0 else { throw BenchError("fsync \(path): \(String(cString: strerror(errno)))") }
}

func elapsed(_ f: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try f()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

/// The `ms` of the last `snapshot-sent` (or `snapshot-installed`, `snapshot-taken`) event in
/// a node's events.jsonl, read as the typed event of SPEC section 4 (the checker's type).
func eventMs(_ dataDir: String, _ event: String) -> Int? {
    guard let text = try? String(contentsOfFile: dataDir + "/events.jsonl", encoding: .utf8) else { return nil }
    var found: Int?
    for line in text.split(separator: "\n") where line.contains("\"\(event)\"") {
        guard let e = NodeEventLine(parsing: String(line)), e.event.kind == event else { continue }
        switch e.event {
        case let .snapshotSent(_, _, _, _, ms), let .snapshotInstalled(_, _, _, _, ms), let .snapshotTaken(_, _, _, ms): found = ms
        default: break
        }
    }
    return found
}

// MARK: What every bench of real nodes starts with

/// The release raft-node beside this raft-bench, or why there is none.
func raftNodeBesideBench() throws -> String {
    guard let selfPath = Bundle.main.executablePath else { throw BenchError("cannot tell where raft-bench is") }
    let binary = URL(fileURLWithPath: selfPath).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("raft-node").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw BenchError("no raft-node beside raft-bench (\(binary)); build it first: swift build -c release --product raft-node")
    }
    return binary
}

/// A new directory `/tmp/PREFIX.XXXXXX` for UNIX sockets: short, as NIO refuses socket paths
/// over 103 bytes (the data stays on the disk being measured).
func socketDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { throw BenchError("mkdtemp failed: errno \(errno)") }
    return String(cString: dir)
}

/// A TCP connection to 127.0.0.1:`port`, with TCP_NODELAY; nil when it cannot connect.
func connectLoopback(_ port: UInt16) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let r = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard r == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// A snapshot on every node at once, then again on any whose snapshot does not reach the
/// leader's commit index (a follower that had not applied everything when asked, perhaps
/// elected since: the leader may change under a bulk load). Returns the seconds of the first
/// round and how many times each node was asked again.
func snapshotOnEveryNode(_ sockets: [LineSocket], names: [String]) throws -> (seconds: Double, askedAgain: [Int]) {
    let seconds = try elapsed {
        for s in sockets { try s.send(#"{"id":1,"op":"snapshot"}"# + "\n") }
        for s in sockets {
            let a = try parseAnswer(s.readLine())
            guard a["ok"]?.boolValue == true else { throw BenchError("snapshot answered \(a)") }
        }
    }
    let committed = int(try status(sockets[try waitForLeader(sockets, names: names)])["commitIndex"])
    var again: [Int] = []
    for (i, s) in sockets.enumerated() {
        var tries = 0
        while int(try status(s)["snapshotIndex"]) < committed {
            tries += 1
            guard tries <= 20 else { throw BenchError("\(names[i])'s snapshot does not reach index \(committed)") }
            let a = try s.call(#"{"id":2,"op":"snapshot"}"#)
            guard a["ok"]?.boolValue == true else { throw BenchError("snapshot on \(names[i]) answered \(a)") }
            if int(a["index"]) < committed { usleep(50_000) }
        }
        again.append(tries)
    }
    return (seconds, again)
}

// MARK: The bench

func nodeBench(_ o: NodeBenchOptions) throws {
    let binary = try raftNodeBesideBench()
    let sockDir = try socketDirectory("rb")
    try? FileManager.default.removeItem(atPath: o.dir)
    try FileManager.default.createDirectory(atPath: o.dir, withIntermediateDirectories: true)
    var nodes: [NodeProcess] = []
    defer {
        for n in nodes { n.stop() }
        try? FileManager.default.removeItem(atPath: sockDir)
    }

    let names = ["n1", "n2", "n3"]
    let members = names.flatMap { ["--member", "\($0)=\(sockDir)/\($0).peer"] }
    // Long enough for `add` to be answered after a 256 MiB catch-up. No snapshots by the
    // threshold: during the bulk load each would compress the whole growing state on all
    // three nodes at once (the bench asks for one snapshot on every node once loaded).
    let common = ["--request-timeout", "120s", "--snapshot-threshold", "0"] + (o.snapshotChunk.map { ["--snapshot-chunk", $0] } ?? [])
    print("raft-bench node: \(binary)")
    print("  node flags: \(common.joined(separator: " "))")
    print("  data in \(o.dir), sockets in \(sockDir); fsync always on; \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
    for n in names {
        nodes.append(try NodeProcess(binary: binary, name: n, dataDir: "\(o.dir)/\(n)", peer: "\(sockDir)/\(n).peer", client: "\(sockDir)/\(n).cli", extra: members + common))
    }
    let sockets = try nodes.map { try $0.waitUp() }
    let firstLeader = try waitForLeader(sockets, names: names)
    print("  leader: \(names[firstLeader])")

    print("")
    print("Writes, 100-byte values, each client its own connection with one request in flight, \(Int(o.writeSeconds)) s each:")
    for clients in [1, 64] {
        let r = try benchWrites(socket: nodes[firstLeader].client, clients: clients, seconds: o.writeSeconds)
        print(String(format: "  %2d client%@: %8.0f writes/s   p50 %6.2f ms   p99 %6.2f ms   (%d writes)", clients, clients == 1 ? " " : "s", r.rate, r.p50, r.p99, r.count))
    }

    print("")
    let stateMiB = Double(o.values * o.valueBytes) / Double(1 << 20)
    print(String(format: "Catch-up by snapshot: %d values of %d KiB of text-like data (%.0f MiB):", o.values, o.valueBytes >> 10, stateMiB))
    let (loaded, loadSeconds) = try load(socket: nodes[firstLeader].client, count: o.values, valueBytes: o.valueBytes, window: 16)
    print(String(format: "  load through the client socket (16 puts in flight): %.1f s, %.1f MB/s", loadSeconds, Double(loaded) / 1e6 / loadSeconds))
    // By the snapshot, so that n4 catches up by it and not by replaying the log's 64 KiB
    // entries; then ask again for the leader, and follow a not-leader answer to `add`.
    let (snapSeconds, askedAgain) = try snapshotOnEveryNode(sockets, names: names)
    for (i, tries) in askedAgain.enumerated() where tries > 0 {
        print("  (\(names[i])'s snapshot did not cover the commit index; asked again \(tries)x)")
    }
    var leader = try waitForLeader(sockets, names: names)
    let leaderStatus = try status(sockets[leader])
    print(String(format: "  snapshot on every node (at once): %.1f s; leader %@, commitIndex %d, snapshotIndex %d", snapSeconds, names[leader], int(leaderStatus["commitIndex"]), int(leaderStatus["snapshotIndex"])))

    // The new node.
    let n4 = try NodeProcess(
        binary: binary, name: "n4", dataDir: "\(o.dir)/n4", peer: "\(sockDir)/n4.peer", client: "\(sockDir)/n4.cli",
        extra: ["--join"] + members + common)
    nodes.append(n4)
    let n4Socket = try n4.waitUp()
    let rssStartKiB = n4.procStatusKiB("VmRSS")
    let t0 = DispatchTime.now().uptimeNanoseconds
    var addAnswer: JSONValue = .object([])
    for _ in 0..<5 {
        addAnswer = try sockets[leader].call(#"{"id":7,"op":"add","node":"n4","address":"\#(n4.peer)"}"#)
        if addAnswer["ok"]?.boolValue == true { break }
        guard addAnswer["error"]?.stringValue == "not-leader" else { throw BenchError("add answered \(addAnswer)") }
        print("  (add answered not-leader by \(names[leader]); retrying)")
        if let l = addAnswer["leader"]?.stringValue, let i = names.firstIndex(of: l) {
            leader = i
        } else {
            leader = try waitForLeader(sockets, names: names)
        }
    }
    let addSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    guard addAnswer["ok"]?.boolValue == true else { throw BenchError("add answered \(addAnswer)") }
    let leaderNode = nodes[leader]
    let target = try status(sockets[leader])
    let commit = int(target["commitIndex"])
    var caughtUp = 0.0
    while true {
        let s = try status(n4Socket)
        if int(s["appliedIndex"]) >= commit, let d = s["digest"]?.stringValue {
            let l = try status(sockets[leader])
            guard d == l["digest"]?.stringValue else { throw BenchError("n4 digest \(d) differs from the leader's \(l["digest"]?.stringValue ?? "")") }
            caughtUp = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            break
        }
        guard Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 < 150 else { throw BenchError("n4 did not catch up in 150 s") }
        usleep(5_000)
    }
    let peakKiB = n4.procStatusKiB("VmHWM")
    let rssAfterKiB = n4.procStatusKiB("VmRSS")

    // zlib alone, on the snapshot file n4 received (the leader's newest).
    let snapDir = leaderNode.dataDir + "/snapshot"
    guard let name = try FileManager.default.contentsOfDirectory(atPath: snapDir).filter({ $0.hasSuffix(".ss") }).sorted().last else {
        throw BenchError("no snapshot file in \(snapDir)")
    }
    let path = snapDir + "/" + name
    let header = try SnapshotHeader.read(path: path)
    let file = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
    let body = Array(file[header.headerSize...])
    var inflated = 0
    let inflateSeconds = try elapsed { inflated = try inflateAlone(body) }
    guard inflated == Int(header.stateSize) else { throw BenchError("inflated \(inflated) bytes, the header says \(header.stateSize)") }
    let copyPath = o.dir + "/snapshot-copy.ss"
    let writeSeconds = try elapsed { try writeFileOnce(file, to: copyPath) }
    try? FileManager.default.removeItem(atPath: copyPath)

    let stateMiBExact = Double(header.stateSize) / Double(1 << 20)
    print(String(format: "  snapshot file: %.1f MiB for %.1f MiB of state (%.1f%%)", Double(file.count) / Double(1 << 20), stateMiBExact, 100 * Double(file.count) / Double(header.stateSize)))
    print(String(format: "  n4 add answered (n4 a voter) after %.2f s; caught up (applied %d, digest equal) after %.2f s", addSeconds, commit, caughtUp))
    if let sent = eventMs(leaderNode.dataDir, "snapshot-sent"), let installed = eventMs(n4.dataDir, "snapshot-installed") {
        print("    leader's snapshot-sent: \(sent) ms; n4's snapshot-installed (first chunk to state restored): \(installed) ms")
    }
    print(String(format: "  n4 RSS: %.1f MiB at start, peak (VmHWM) %.1f MiB, %.1f MiB after", Double(rssStartKiB) / 1024, Double(peakKiB) / 1024, Double(rssAfterKiB) / 1024))
    print(String(format: "  zlib alone, inflating the same %.1f MiB body in memory: %.2f s (%.0f MB/s of state)", Double(body.count) / Double(1 << 20), inflateSeconds, Double(inflated) / 1e6 / inflateSeconds))
    print(String(format: "  writing the snapshot file once (1 MiB writes, fsync): %.2f s", writeSeconds))

    let rssLimit = Double(rssStartKiB) / 1024 + stateMiBExact + 64
    let timeLimit = 1.5 * inflateSeconds + writeSeconds
    let rssOK = Double(peakKiB) / 1024 <= rssLimit
    let timeOK = caughtUp <= timeLimit
    print("")
    print("Issue 4, item 7, as judged:")
    print(String(format: "  peak RSS <= RSS at start + state held afterwards + 64 MiB:  %.1f <= %.1f + %.1f + 64 = %.1f MiB  %@",
        Double(peakKiB) / 1024, Double(rssStartKiB) / 1024, stateMiBExact, rssLimit, rssOK ? "holds" : "DOES NOT HOLD"))
    print(String(format: "  catch-up <= 1.5 x zlib inflate + snapshot file write:       %.2f <= 1.5 x %.2f + %.2f = %.2f s  %@",
        caughtUp, inflateSeconds, writeSeconds, timeLimit, timeOK ? "holds" : "DOES NOT HOLD"))
    print("  for scale: etcd 3.4.23 catches up a member holding such a 256 MiB state in 1.6-1.9 s on this machine (issue 12, four runs)")
}
