// raft-bench storage|node|checker|all [--dir DIR] [--state-mib N] [--seconds S] [--values N] [--snapshot-chunk BYTES] [--keep]
//
// `node` (NodeBench.swift): the node figures of issue 4 against real raft-node processes.
//
// Storage figures (issue 3): log appends a second with group commit (128-byte entries,
// fsync on) for several batch sizes, and snapshot write and read throughput for N MiB
// (default 64) of key-value state, beside `gzip -1` and `gzip -d` on the same bytes in
// the same run. Run it built for release: `make bench`.
import Foundation
import Raft
import RaftStorage

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("raft-bench: \(message)\n".utf8))
    exit(2)
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func mbps(_ bytes: Int, _ d: Duration) -> String {
    String(format: "%7.1f MB/s", Double(bytes) / 1e6 / seconds(d))
}

/// Key-value state: `key-NNNNNNNNNN=VALUE\n` lines with 90-character pseudo-random values
/// of lower-case letters and digits (it compresses about as much as typical text).
func keyValueState(bytes: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes + 128)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
    var x: UInt64 = 0x1234_5678_9abc_def0
    var i = 0
    while out.count < bytes {
        out += Array("key-\(String(format: "%010d", i))=".utf8)
        for _ in 0..<90 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            out.append(alphabet[Int((x >> 33) % UInt64(alphabet.count))])
        }
        out.append(UInt8(ascii: "\n"))
        i += 1
    }
    return Array(out.prefix(bytes))
}

/// Runs a shell command line, returning how long it took.
func timeShell(_ command: String) throws -> Duration {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let clock = ContinuousClock()
    let start = clock.now
    try p.run()
    p.waitUntilExit()
    let elapsed = clock.now - start
    guard p.terminationStatus == 0 else { fail("`\(command)` failed with status \(p.terminationStatus)") }
    return elapsed
}

func benchAppends(dir: String, batch: Int, seconds limit: Double) throws -> (appends: Double, syncs: Double) {
    let path = dir + "/log-\(batch)"
    try? FileManager.default.removeItem(atPath: path)
    let store = try LogStore(directory: path)
    let payload = [UInt8](repeating: 0x61, count: 128)
    let clock = ContinuousClock()
    let start = clock.now
    var index: LogIndex = 1
    var syncs = 0
    while seconds(clock.now - start) < limit {
        var entries: [Entry] = []
        entries.reserveCapacity(batch)
        for _ in 0..<batch {
            entries.append(Entry(index: index, term: 1, type: .command, payload: payload))
            index += 1
        }
        try store.append(entries)
        try store.sync()
        syncs += 1
    }
    let elapsed = seconds(clock.now - start)
    try store.close()
    try? FileManager.default.removeItem(atPath: path)
    return (Double(index - 1) / elapsed, Double(syncs) / elapsed)
}

func storageBench(dir: String, stateMiB: Int, appendSeconds: Double) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    print("raft-bench storage: data in \(dir)")
    print("")
    print("Log appends, 128-byte entries, fsync on (fdatasync per group commit):")
    for batch in [1, 16, 128, 1024] {
        let r = try benchAppends(dir: dir, batch: batch, seconds: appendSeconds)
        print(String(format: "  %5d entries per sync: %10.0f appends/s  (%6.0f syncs/s)", batch, r.appends, r.syncs))
    }

    let state = keyValueState(bytes: stateMiB << 20)
    let raw = dir + "/state.raw"
    try Data(state).write(to: URL(fileURLWithPath: raw))
    let snapDir = dir + "/snapshot"
    try? FileManager.default.removeItem(atPath: snapDir)
    let store = try SnapshotStore(directory: snapDir, compressionLevel: 1)
    let clock = ContinuousClock()
    let piece = 1 << 20

    var start = clock.now
    let writer = try store.create(index: 1000, term: 1, configuration: Configuration(voters: ["n1", "n2", "n3"]))
    var offset = 0
    while offset < state.count {
        try writer.write(state[offset..<min(state.count, offset + piece)])
        offset += piece
    }
    let meta = try writer.finish()
    let writeTime = clock.now - start

    start = clock.now
    let reader = try store.reader(for: meta)
    var readBytes = 0
    try reader.forEachPiece(maxBytes: piece) { readBytes += $0.count }
    let readTime = clock.now - start
    guard readBytes == state.count else { fail("read back \(readBytes) bytes, wrote \(state.count)") }

    let gz = dir + "/state.raw.gz"
    let gzipTime = try timeShell("gzip -1 -c '\(raw)' > '\(gz)'")
    let gunzipTime = try timeShell("gzip -d -c '\(gz)' > /dev/null")
    let gzSize = (try FileManager.default.attributesOfItem(atPath: gz)[.size] as? NSNumber)?.intValue ?? 0

    let mib = Double(state.count) / Double(1 << 20)
    print("")
    print(String(format: "Snapshot of %.0f MiB of key-value state (MB = 10^6 bytes of state a second):", mib))
    print("  snapshot write (zlib level 1, streamed, fsync, rename): \(mbps(state.count, writeTime))  -> \(meta.size) bytes (\(String(format: "%.1f", 100 * Double(meta.size) / Double(state.count)))%)")
    print("  snapshot read (checksum pass, then streamed inflate):   \(mbps(state.count, readTime))")
    print("  gzip -1 on the same bytes (to a file, no fsync):         \(mbps(state.count, gzipTime))  -> \(gzSize) bytes (\(String(format: "%.1f", 100 * Double(gzSize) / Double(state.count)))%)")
    print("  gzip -d on the same bytes (to /dev/null):                \(mbps(state.count, gunzipTime))")
    try? FileManager.default.removeItem(atPath: raw)
    try? FileManager.default.removeItem(atPath: gz)
    try? FileManager.default.removeItem(atPath: snapDir)
}

let usage = "usage: raft-bench storage|node|checker|etcd|compare|catchup|soak|all [--dir DIR] [--state-mib N] [--seconds S] [--values N] [--snapshot-chunk BYTES] [--rounds N] [--etcd-snapshot-count N] [--failovers N] [--only WORKLOAD] [--link-mbit N] [--minutes M] [--keep]"
var args = Array(CommandLine.arguments.dropFirst())
var what = args.isEmpty || args[0].hasPrefix("-") ? "storage" : args.removeFirst()
guard ["storage", "node", "checker", "etcd", "compare", "catchup", "soak", "all"].contains(what) else { fail("unknown bench '\(what)'; \(usage)") }
if what == "compare" { what = "etcd" }  // issue 12's name for the bench beside etcd
// Under the package (on the disk the data would be on, not a tmpfs); .build* is ignored by git.
var dir = FileManager.default.currentDirectoryPath + "/.build-bench"
if what == "catchup" { catchUpCommand(args, dir: dir) }  // CatchUpVersusEtcd.swift: its own options; exits
var stateMiB = 64
var appendSeconds = 2.0
var writeSeconds = 5.0
var values = 4096
var snapshotChunk: String?
var keep = false
var rounds = 5
var etcdSnapshotCount: Int?
var secondsGiven: Double?
var failovers = 30
var only: String?
var soakMinutes = 10.0
while !args.isEmpty {
    let flag = args.removeFirst()
    if flag == "--keep" {
        keep = true
        continue
    }
    guard let value = args.first else { fail("\(flag) needs a value") }
    args.removeFirst()
    switch flag {
    case "--dir": dir = value
    case "--state-mib": guard let n = Int(value), n > 0 else { fail("--state-mib needs a positive number") }; stateMiB = n
    case "--seconds":
        guard let s = Double(value), s > 0 else { fail("--seconds needs a positive number") }
        appendSeconds = s
        writeSeconds = s
        secondsGiven = s
    case "--rounds": guard let n = Int(value), n > 0 else { fail("--rounds needs a positive number") }; rounds = n
    case "--etcd-snapshot-count": guard let n = Int(value), n > 0 else { fail("--etcd-snapshot-count needs a positive number") }; etcdSnapshotCount = n
    case "--failovers": guard let n = Int(value), n >= 0 else { fail("--failovers needs a number, 0 or more") }; failovers = n
    case "--only": only = value
    case "--minutes": guard let m = Double(value), m > 0 else { fail("--minutes needs a positive number") }; soakMinutes = m
    case "--snapshot-chunk": snapshotChunk = value
    case "--values": guard let n = Int(value), n > 0 else { fail("--values needs a positive number") }; values = n
    default: fail("unknown option \(flag); \(usage)")
    }
}
do {
    if what == "storage" || what == "all" {
        try storageBench(dir: dir + "/storage", stateMiB: stateMiB, appendSeconds: appendSeconds)
        try? FileManager.default.removeItem(atPath: dir + "/storage")
    }
    if what == "all" { print("") }
    if what == "checker" || what == "all" {
        checkerBench()
        print("")
    }
    if what == "etcd" {
        try versusEtcdBench(VersusOptions(dir: dir + "/etcd", seconds: secondsGiven ?? 5, rounds: rounds, etcdSnapshotCount: etcdSnapshotCount, failovers: failovers, only: only))
        if !keep { try? FileManager.default.removeItem(atPath: dir + "/etcd") }
    }
    if what == "soak" {
        let passed = try soakBench(SoakOptions(dir: dir + "/soak", minutes: soakMinutes))
        if !keep { try? FileManager.default.removeItem(atPath: dir + "/soak") }
        if !passed { exit(1) }
    }
    if what == "node" || what == "all" {
        try nodeBench(NodeBenchOptions(dir: dir + "/node", writeSeconds: writeSeconds, values: values, snapshotChunk: snapshotChunk))
        if keep {
            print("kept the nodes' data dirs (events.jsonl, node.log) in \(dir)/node")
        } else {
            try? FileManager.default.removeItem(atPath: dir + "/node")
        }
    }
} catch {
    fail("\(error)")
}

/// Writes a line at once (Swift's print is block-buffered into a file or pipe), so a long
/// run shows where it is and a tool watching the output can act on a line as it comes.
func print(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
