import Foundation
import Raft
import Testing
@testable import RaftStorage

// The crash tests run `storage-crash-child` (Sources/StorageCrashChild), kill it with
// SIGKILL at random moments, reopen its data directory, and check that everything it
// reported durable is there, byte for byte, and that the files open.

/// The child's payload and snapshot state functions (see its main.swift).
enum CrashModelData {
    static func payload(_ index: LogIndex, _ term: Term) -> [UInt8] {
        var h = StableHash()
        h.combine(index)
        h.combine(term)
        var x = h.finalized
        let size = Int(16 + index % 200)
        return (0..<size).map { _ in
            x = x &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: x >> 33)
        }
    }

    static func state(_ index: LogIndex, _ term: Term) -> [UInt8] {
        let pieces = Int(100 + (index * 7919) % 4000)
        var out: [UInt8] = []
        for k in 0..<pieces {
            out += Array("snapshot \(index) \(term) piece \(k): \(StableHash.of(Array("\(index)/\(term)/\(k)".utf8)).hex16)\n".utf8)
        }
        return out
    }
}

/// What the child has reported durable so far, over all its runs in one directory.
struct CrashModel {
    var expected: [LogIndex: Term] = [:]
    var term: Term = 0
    var compactCeiling: LogIndex = 0
    var snapshot: (index: LogIndex, term: Term)?
    var reports = 0

    mutating func apply(_ output: String) {
        // A line is reported only once its newline is written; ignore a cut-off last line.
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast()
        for line in lines {
            let f = line.split(separator: " ")
            let n = f.dropFirst().compactMap { UInt64($0) }
            reports += 1
            switch f.first {
            case "D": for i in n[0]...n[1] { expected[i] = n[2] }
            case "T": term = max(term, n[0])
            case "X": expected = expected.filter { $0.key < n[0] }
            case "S": snapshot = (n[0], n[1])
            case "C": compactCeiling = max(compactCeiling, n[0])
            default: Issue.record("unexpected line from the child: \(line)")
            }
        }
    }

    /// Reopens `directory` and checks it against the reports. Returns the entries checked.
    func check(_ directory: String, stats: inout CrashStats) throws -> Int {
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/snapshot")) ?? []
        if leftovers.contains(where: { $0.hasSuffix(".tmp") }) { stats.killedWritingSnapshot += 1 }
        let storage = try NodeStorage(directory: directory)
        if storage.log.recovery != nil { stats.tornTails += 1 }
        let state = try storage.durableState()
        #expect(state.hardState.term >= term, "term \(state.hardState.term) < reported \(term)")
        let log = state.log
        #expect(log.prevIndex <= compactCeiling, "compacted through \(log.prevIndex), never asked past \(compactCeiling)")
        var checked = 0
        for (i, t) in expected where i > log.prevIndex {
            let e = log.entry(at: i)
            #expect(e?.term == t, "entry \(i): reported durable with term \(t), found \(String(describing: e?.term))")
            checked += 1
        }
        for e in log.entries {
            #expect(e.payload == CrashModelData.payload(e.index, e.term), "entry \(e.index) term \(e.term) has a wrong payload")
        }
        if let (index, term) = snapshot {
            let meta = try #require(state.snapshot, "a snapshot of \(index) was reported durable and none is there")
            #expect(meta.index >= index)
            let reader = try storage.snapshots.reader(for: meta)
            var got: [UInt8] = []
            try reader.forEachPiece(maxBytes: 1 << 16) { got += $0 }
            #expect(got == CrashModelData.state(meta.index, meta.term), "snapshot \(meta.index) holds the wrong state")
            if meta.index == index { #expect(meta.term == term) }
        }
        if log.prevIndex > 0 {
            #expect(log.prevIndex <= state.snapshot?.index ?? 0, "the log is compacted past the newest snapshot")
        }
        try storage.close()
        return checked
    }
}

/// What a power loss may do to writes that were not synced: cuts the newest segment at a
/// random byte after the last record reported durable, sometimes leaving zeros after the
/// cut (a size that reached the disk before the data did).
func simulateLostWrites(_ directory: String, durable: LogIndex, rng: inout SeededRandom) throws {
    let logDir = directory + "/log"
    guard let newest = segmentFiles(logDir).last else { return }
    let path = logDir + "/" + newest
    let scan = try LogSegment.scan(path: path)
    let firstUnsynced = zip(scan.entries, scan.offsets).first { $0.0.index > durable }?.1 ?? scan.validEnd
    let size = fileSize(path)
    guard size > firstUnsynced else { return }
    let cut = firstUnsynced + rng.next() % (size - firstUnsynced)
    var bytes = Array(try readBytes(path).prefix(Int(cut)))
    if rng.next() % 2 == 0 { bytes += [UInt8](repeating: 0, count: Int(1 + rng.next() % 512)) }
    try writeBytes(bytes, path)
}

struct CrashStats {
    var killedWritingSnapshot = 0
    var tornTails = 0
}

/// The built `storage-crash-child`: beside the test bundle (what `swift build
/// --build-tests` and `swift test` build), else in the package's build directories.
func crashChildPath() -> String? {
    var dirs: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    var bundle = Bundle.main.bundleURL
    for _ in 0..<4 {
        dirs.append(bundle)
        bundle.deleteLastPathComponent()
    }
    let root = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent()
    for build in [".build", ".build-storage"] { dirs.append(root.appendingPathComponent(build).appendingPathComponent("debug")) }
    for dir in dirs {
        let path = dir.appendingPathComponent("storage-crash-child").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

@Suite("Crash")
struct CrashTests {
    /// 4 directories x 52 kills = 208 kills, run in parallel.
    static let killsPerRun = 52

    @Test(arguments: [11, 22, 33, 44] as [UInt64])
    func killedAtRandomMomentsNothingDurableIsLost(seed: UInt64) throws {
        let child = try #require(crashChildPath(), "storage-crash-child is not built: run swift build --build-tests")
        let dir = TempDir("crash-\(seed)")
        defer { dir.cleanup() }
        var rng = SeededRandom(seed: seed)
        var model = CrashModel()
        var kills = 0
        var checkedEntries = 0
        var stats = CrashStats()
        for run in 0..<Self.killsPerRun {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: child)
            process.arguments = [dir.path, String(seed &* 1000 &+ UInt64(run))]
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            // Mostly once it has reported a random number of steps (so that it makes
            // progress however loaded the machine is), then at a random moment within a
            // few milliseconds; sometimes while it is still opening (and repairing).
            var received = Data()
            let early = rng.next() % 8 == 0
            let lines = early ? 0 : Int(rng.next() % 25)
            while received.filter({ $0 == 0x0a }).count < lines {
                let more = out.fileHandleForReading.availableData
                if more.isEmpty { break }
                received += more
            }
            usleep(useconds_t(rng.next() % (early ? 3_000 : 8_000)))
            let alive = process.isRunning
            kill(process.processIdentifier, SIGKILL)
            received += out.fileHandleForReading.readDataToEndOfFile()
            let output = String(decoding: received, as: UTF8.self)
            let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(alive, "the child exited by itself: \(errors)")
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL, "seed \(seed) run \(run): \(errors)")
            if process.terminationStatus == SIGKILL { kills += 1 }
            model.apply(output)
            if rng.next() % 3 == 0 { try simulateLostWrites(dir.path, durable: model.expected.keys.max() ?? 0, rng: &rng) }
            do {
                checkedEntries += try model.check(dir.path, stats: &stats)
            } catch {
                Issue.record("seed \(seed) run \(run): reopening after the kill failed: \(error)")
                return
            }
        }
        #expect(kills == Self.killsPerRun)
        #expect(model.reports > Self.killsPerRun * 3, "the child made too little progress to test anything (\(model.reports) reports)")
        #expect(model.snapshot != nil, "no snapshot was taken")
        #expect(checkedEntries > 0)
        print("crash test seed \(seed): \(kills) kills, \(model.reports) reports, last index \(model.expected.keys.max() ?? 0), \(stats.killedWritingSnapshot) kills while writing a snapshot, \(stats.tornTails) torn tails cut")
    }
}
