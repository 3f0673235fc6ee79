// raft-bench soak: a node's memory stays bounded under a sustained load (issue 12).
//
// Three raft-node processes (the release build beside this binary, defaults, fsync on) take
// closed-loop puts from `clients` clients for `minutes`, on a fixed set of `keys` keys (the
// state stops growing once every key is written), each client to the leader. Every 10 s the
// bench reads each node's VmRSS (/proc/PID/status). It passes when, for every node, the RSS
// samples of the second half of the run (minutes 5-10 at the default 10) lie within
// `tolerance` (5 %) of their smallest: a leak grows without bound and shows there, while the
// first minutes (the log and the state filling, allocator pools warming up) do not count.
import Dispatch
import Foundation
import RaftNodeKit
import RaftNodeWire

#if canImport(Glibc)
import Glibc
#endif

struct SoakOptions {
    var dir: String
    var minutes = 10.0
    var clients = 16
    var keys = 1000
    var valueBytes = 100
    var tolerance = 0.05
    var sampleSeconds = 10.0
}

/// Runs the soak; returns whether every node's memory stayed within the tolerance.
func soakBench(_ o: SoakOptions) throws -> Bool {
    let binary = try raftNodeBesideBench()
    let sockDir = try socketDirectory("rbs")
    try? FileManager.default.removeItem(atPath: o.dir)
    try FileManager.default.createDirectory(atPath: o.dir, withIntermediateDirectories: true)
    let names = ["n1", "n2", "n3"]
    let members = names.flatMap { ["--member", "\($0)=\(sockDir)/\($0).peer"] }
    var nodes: [NodeProcess] = []
    defer {
        for n in nodes { n.stop() }
        try? FileManager.default.removeItem(atPath: sockDir)
    }
    for n in names {
        nodes.append(try NodeProcess(binary: binary, name: n, dataDir: "\(o.dir)/\(n)", peer: "\(sockDir)/\(n).peer", client: "\(sockDir)/\(n).cli", extra: members))
    }
    let sockets = try nodes.map { try $0.waitUp() }
    _ = try waitForLeader(sockets, names: names)

    print("raft-bench soak: \(binary), 3 nodes, defaults, fsync on; \(o.clients) closed-loop clients putting \(o.valueBytes) B values on \(o.keys) keys for \(o.minutes) min")
    print("  VmRSS of each node every \(Int(o.sampleSeconds)) s; passes when the samples of the second half lie within \(Int(o.tolerance * 100)) % of their smallest")

    let stop = SharedValue(false)
    let writes = SharedValue(0)
    let failures = SharedValue(0)
    let group = DispatchGroup()
    let generator = TextGenerator()
    let perClient = max(1, o.keys / o.clients)
    let clientPaths = nodes.map(\.client)
    for c in 0..<o.clients {
        group.enter()
        let value = generator.text(seed: UInt64(c + 1), bytes: o.valueBytes)
        let t = Thread {
            defer { group.leave() }
            var connection: OursConnection?
            var i = 0
            while !stop.load() {
                do {
                    if connection == nil {
                        // The leader, as the nodes name it now (a failed put may mean another).
                        let st = try clientPaths.map { try status(LineSocket(path: $0)) }
                        guard let l = st.compactMap({ $0["leader"]?.stringValue }).first, let k = names.firstIndex(of: l) else {
                            usleep(50_000)
                            continue
                        }
                        connection = try OursConnection(path: clientPaths[k])
                    }
                    try connection!.put(key: "s\(c)-\(i % perClient)", value: value)
                    writes.add(1)
                    i += 1
                } catch {
                    failures.add(1)
                    connection = nil
                    usleep(50_000)
                }
            }
        }
        t.stackSize = 1 << 20
        t.start()
    }

    let t0 = Date()
    var samples: [(seconds: Double, rssKiB: [Int])] = []
    while true {
        let elapsed = Date().timeIntervalSince(t0)
        samples.append((elapsed, nodes.map { $0.procStatusKiB("VmRSS") }))
        let line = samples.last!
        print(String(format: "  %5.0f s: ", line.seconds) + zip(names, line.rssKiB).map { "\($0) \($1 / 1024) MiB" }.joined(separator: ", ") + "; \(writes.load()) writes")
        if elapsed >= o.minutes * 60 { break }
        Thread.sleep(forTimeInterval: min(o.sampleSeconds, o.minutes * 60 - elapsed + 0.01))
    }
    stop.store(true)
    group.wait()

    for (k, n) in nodes.enumerated() where !n.isRunning {
        throw BenchError("\(names[k]) ended during the soak; see \(n.dataDir)/stderr.txt")
    }
    let half = o.minutes * 30
    var passed = true
    print("")
    print("| node | RSS at the half | smallest / largest of the second half | spread | within \(Int(o.tolerance * 100)) % |")
    print("|---|---|---|---|---|")
    for (k, name) in names.enumerated() {
        let late = samples.filter { $0.seconds >= half }.map { $0.rssKiB[k] }.filter { $0 > 0 }
        guard let lo = late.min(), let hi = late.max(), let first = late.first else { throw BenchError("no RSS samples of \(name)") }
        let spread = Double(hi - lo) / Double(lo)
        let ok = spread <= o.tolerance
        passed = passed && ok
        print(String(format: "| %@ | %d MiB | %d / %d MiB | %.1f %% | %@ |", name, first / 1024, lo / 1024, hi / 1024, 100 * spread, ok ? "yes" : "NO"))
    }
    let rate = Double(writes.load()) / Date().timeIntervalSince(t0)
    print(String(format: "  %d writes (%.0f/s), %d failed attempts (retried); %@", writes.load(), rate, failures.load(), passed ? "memory bounded" : "MEMORY GREW"))
    return passed
}

/// A value shared by threads (the soak's, the load generator's counts).
final class SharedValue<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func load() -> T { lock.withLock { value } }
    func store(_ v: T) { lock.withLock { value = v } }
}

extension SharedValue where T == Int {
    func add(_ n: Int) { lock.withLock { value += n } }
}
