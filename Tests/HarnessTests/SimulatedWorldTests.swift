import Foundation
import Harness
import HarnessCheck
import Raft
import RaftNodeKit
import RaftNodeWire
import Testing

/// The package's root (three levels above this file).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The built `harness`: beside the test bundle, else in the package's build directory.
private func harnessPath() -> String? { NodeBinaries.locate("harness", packageRoot: packageRoot) }

private func checker(_ dir: String) -> [CheckResult] {
    RunChecker.check(runDirectory: dir)
}

/// A hash of every file under `dir` with its path below it.
private func treeHash(_ dir: String) throws -> String {
    var h = StableHash()
    let paths = (FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []).sorted()
    for p in paths {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir), !isDir.boolValue else { continue }
        h.combine(Array(p.utf8))
        h.combine(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + p))))
    }
    return String(h.value, radix: 16)
}

@Suite("The simulator's world: scenario files in simulated time")
struct SimulatedWorldTests {
    @Test(
        "A scenario of harness/scenarios passes in the simulator with the real checker, whatever the seed",
        arguments: ["leader-killed", "crashed-under-load", "deposed-leader-answers", "killed-during-snapshot"], [1, 3, 8] as [UInt64])
    func scenarioPasses(name: String, seed: UInt64) async throws {
        let file = packageRoot.appendingPathComponent("harness/scenarios/\(name).scenario").path
        let scenario = try ScenarioParser.parse(try String(contentsOfFile: file, encoding: .utf8), file: file)
        let dir = NSTemporaryDirectory() + "sim-\(name)-\(seed)-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var runner = ScenarioRunner(nodeBinary: nil, checker: checker, output: nil)
        runner.world = .sim
        let outcome = await runner.run(scenario, seed: seed, directory: dir)
        let failed = outcome.report.checks.filter { !$0.passed }.map { "\($0.name): \($0.evidence.prefix(3))" }
        #expect(outcome.report.passed, "\(failed)")
        #expect(outcome.report.json.contains(#""world":"sim""#))
        // Every check verified something: a pass over nothing would show here.
        #expect(outcome.report.checks.first { $0.name == "acknowledged-writes" }?.notes.contains { $0.contains("acknowledged puts") } == true)
    }

    @Test(
        "With the planted stale-reads fault (a node answers get from its own state), check 6 fails reads-across-a-partition in the simulator, whatever the seed; without it the same runs pass",
        arguments: [1, 2, 3] as [UInt64])
    func staleReadsAreCaught(seed: UInt64) async throws {
        let file = packageRoot.appendingPathComponent("harness/scenarios/reads-across-a-partition.scenario").path
        let scenario = try ScenarioParser.parse(try String(contentsOfFile: file, encoding: .utf8), file: file)
        for planted in [true, false] {
            let dir = NSTemporaryDirectory() + "sim-stale-\(seed)-\(planted)-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var runner = ScenarioRunner(nodeBinary: nil, checker: checker, output: nil)
            runner.world = .sim
            if planted { runner.plantedFaults = [.staleReads] }
            let outcome = await runner.run(scenario, seed: seed, directory: dir)
            let failed = outcome.report.checks.filter { !$0.passed }
            let linearizable = try #require(outcome.report.checks.first { $0.name == "linearizable" })
            if planted {
                // Only check 6 sees it: the nodes' files are as good as ever.
                #expect(failed.map(\.name) == ["linearizable"], "\(failed.map { "\($0.name): \($0.evidence.prefix(2))" })")
                #expect(linearizable.status == "fail")
                #expect(linearizable.evidence.contains { $0.contains("get") }, "\(linearizable.evidence)")
            } else {
                #expect(failed.isEmpty, "\(failed.map { "\($0.name): \($0.evidence.prefix(2))" })")
            }
        }
    }

    @Test("A failed step's check says when it failed and how many steps went well before it")
    func failedStepHasItsTime() async throws {
        let text = "cluster n1 n2 n3\nawait leader within 10s\nwrite 5\nkill leader as l\nawait no-leader among n1 n2 n3 for 1s\nwrite 1\n"
        let scenario = try ScenarioParser.parse(text, file: "fails.scenario")
        let dir = NSTemporaryDirectory() + "sim-step-at-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var runner = ScenarioRunner(nodeBinary: nil, checker: checker, output: nil)
        runner.world = .sim
        let outcome = await runner.run(scenario, seed: 3, directory: dir)
        let steps = try #require(outcome.report.checks.first { $0.name == "steps" })
        #expect(steps.status == "fail" && outcome.stepFailure?.line == 5)
        #expect(steps.verified.map { "\($0.what)=\($0.count)" } == ["steps=4"])
        let at = try #require(steps.firstViolationAt)
        // After the kill, within the await's second (the run's clock starts at 2026-01-01).
        let start = try #require(Timestamp.unixMicros(rfc3339: "2026-01-01T00:00:00Z"))
        #expect(at > start && at < start + 15_000_000)
        #expect(outcome.report.json.contains(#""at":"2026-01-01T"#))
    }

    @Test("Two runs of a seed, in two processes (two hash seeds), write byte-identical run directories")
    func deterministicAcrossProcesses() throws {
        let harness = try #require(harnessPath(), "harness is not built: run swift build --build-tests")
        let files = ["crashed-under-load", "membership-churn", "lossy-network"].map { packageRoot.appendingPathComponent("harness/scenarios/\($0).scenario").path }
        var hashes: [String] = []
        for attempt in 0..<2 {
            let runs = NSTemporaryDirectory() + "sim-determinism-\(attempt)-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: runs) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: harness)
            p.arguments = ["run", "--sim", "--seed", "42", "--runs", runs] + files
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            hashes.append(try treeHash(runs))
        }
        #expect(hashes[0] == hashes[1], "the two runs of seed 42 differ")
    }

    @Test("explore --sim says the same, scenario for scenario, whether it runs one scenario at a time or three")
    func exploreJobsChangeNothingButTime() async throws {
        func explore(jobs: Int) async -> ([String], ExploreSummary) {
            let runs = NSTemporaryDirectory() + "sim-explore-jobs\(jobs)-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: runs) }
            var options = ExploreOptions(
                seed: 11, count: 7, forMs: nil, runs: runs, shrinkBudgetMs: 0, shrinkTries: 1, stopAfterFailures: nil, keepPassing: false,
                verbose: false)
            options.sim = true
            options.maxValueSize = 1024
            options.jobs = jobs
            var runner = ScenarioRunner(nodeBinary: nil, checker: checker, output: nil)
            runner.world = .sim
            let lines = Locked<[String]>([])
            let summary = await ExploreRunner(options: options, runner: runner, say: { line in lines.withLockedValue { $0.append(line) } }).run()
            // A scenario's line without its time; the header and the summary's timings aside.
            let perScenario = lines.withLockedValue { $0 }.filter { $0.hasPrefix("explore-11-") }.map { line in
                line.split(separator: " ").filter { !$0.hasSuffix("s") || Double($0.dropLast()) == nil }.joined(separator: " ")
            }
            return (perScenario, summary)
        }
        let (one, s1) = await explore(jobs: 1)
        let (three, s3) = await explore(jobs: 3)
        #expect(one.count == 7)
        #expect(one == three)
        #expect(s1.scenarios == 7 && s3.scenarios == 7)
        #expect(s1.failures.map(\.scenario) == s3.failures.map(\.scenario))
        #expect(s1.coverage == s3.coverage)
        #expect(!s1.coverage.isEmpty, "seven scenarios reached no target state: the runs did nothing")
    }

    @Test("A node copying another's identical snapshot file instead of deflating it again changes no byte of the run")
    func sharedTakesChangeNothing() async throws {
        let file = packageRoot.appendingPathComponent("harness/scenarios/membership-churn.scenario").path
        let scenario = try ScenarioParser.parse(try String(contentsOfFile: file, encoding: .utf8), file: file)
        var hashes: [String] = []
        for share in [true, false] {
            let dir = NSTemporaryDirectory() + "sim-takes-\(share)-\(UInt32.random(in: 0...UInt32.max))"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var runner = ScenarioRunner(nodeBinary: nil, checker: checker, output: nil)
            runner.world = .sim
            runner.shareIdenticalTakes = share
            let outcome = await runner.run(scenario, seed: 5, directory: dir)
            #expect(outcome.report.passed)
            // Two nodes took the same snapshot (so a copy was made), else this shows nothing.
            var takes: [String: Set<String>] = [:]
            for node in try FileManager.default.contentsOfDirectory(atPath: dir + "/nodes") {
                let text = try String(contentsOfFile: dir + "/nodes/\(node)/events.jsonl", encoding: .utf8)
                for line in text.split(separator: "\n") {
                    guard let e = NodeEventLine(parsing: String(line)), case let .snapshotTaken(index, term, _, _) = e.event else { continue }
                    takes["\(index)@\(term)", default: []].insert(node)
                }
            }
            #expect(takes.values.contains { $0.count >= 2 }, "no snapshot was taken by two nodes")
            hashes.append(try treeHash(dir))
        }
        #expect(hashes[0] == hashes[1])
    }
}
