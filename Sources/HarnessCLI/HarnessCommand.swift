import ArgumentParser
import CommandLineSupport
import Foundation
import Harness
import HarnessCheck

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `harness`: runs scenario files against real raft-node processes (SPEC sections 1-3, 6).
@main
struct HarnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "harness",
        abstract: "Runs Raft scenarios against real raft-node processes and checks the runs.",
        subcommands: [Run.self, Check.self, Inspect.self])

    /// Bad input answers one line on stderr and exit 2, never usage pages.
    static func main() async { await mainWithOneLineErrors(name: "harness") }
}

func fail(_ message: String, code: Int32 = 2) -> ExitCode {
    FileHandle.standardError.write(Data("harness: \(message)\n".utf8))
    return ExitCode(code)
}

// MARK: run

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs scenario files, each into RUNS/<scenario>-<seed>/; exit 0 only if every one passed.")

    @Argument(help: "Scenario files (.scenario).")
    var files: [String]

    @Option(help: "Seed for the choices a scenario leaves open (follower choice, network loss and delay); random by default.")
    var seed: UInt64?

    @Option(help: "Directory for the run directories.")
    var runs = "runs"

    @Option(name: .customLong("raft-node"), help: "The raft-node binary (default: beside harness).")
    var raftNode: String?

    func run() async throws {
        guard !files.isEmpty else { throw fail("run needs at least one scenario file") }
        // Every file is read and parsed before anything starts.
        var scenarios: [Scenario] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { throw fail("\(file): cannot read the file") }
            guard let text = String(data: data, encoding: .utf8) else { throw fail("\(file): not UTF-8 text") }
            do {
                scenarios.append(try ScenarioParser.parse(text, file: file))
            } catch {
                throw fail("\(error)")
            }
        }
        let names = scenarios.map(\.name)
        if let dup = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw fail("two scenarios are named \(dup); their run directories would collide")
        }
        if let raftNode, !FileManager.default.isExecutableFile(atPath: raftNode) { throw fail("--raft-node \(raftNode) is not an executable file") }
        guard raftNode != nil || ProcessBackend.locateNodeBinary() != nil else {
            throw fail("cannot find raft-node beside the harness; build it (swift build) or pass --raft-node PATH")
        }
        let seed = self.seed ?? UInt64.random(in: 1...999_999)
        Interruption.install()
        print("harness: \(scenarios.count) scenario(s), seed \(seed), runs in \(runs)/")
        var rows: [(String, Bool, Int, Int, Int, String)] = []
        for scenario in scenarios {
            let dir = runs + "/" + scenario.name + "-\(seed)"
            let report = await runOne(scenario, seed: seed, directory: dir)
            let counts = runCounts(dir)
            rows.append((scenario.name, report.passed, report.ms, counts.snapshotsInstalled, counts.elections, dir))
        }
        printSummary(rows, seed: seed)
        if rows.contains(where: { !$0.1 }) { throw ExitCode(1) }
    }

    func runOne(_ scenario: Scenario, seed: UInt64, directory: String) async -> RunReport {
        let started = ContinuousClock.now
        func elapsed() -> Int { started.duration(to: .now).ms }
        print("=== \(scenario.name) (\(scenario.file)), seed \(seed) -> \(directory)")
        try? FileManager.default.removeItem(atPath: directory)
        let recorder: RunDirectoryRecorder
        let backend: ProcessBackend
        do {
            recorder = try RunDirectoryRecorder(directory: directory)
            backend = try ProcessBackend(runDirectory: directory, nodeBinary: raftNode, seed: seed)
        } catch {
            print("    could not start: \(error)")
            let report = RunReport(
                scenario: scenario.name, seed: seed, checks: [.init(name: "steps", passed: false, evidence: ["\(error)"])], ms: elapsed())
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try? report.write(to: directory)
            return report
        }
        Interruption.current(.init(directory: directory, scenario: scenario.name, seed: seed, started: started))
        recorder.log("scenario \(scenario.name) file \(scenario.file) seed \(seed) raft-node \(backend.nodeBinary) sockets \(backend.socketDirectory)")
        let engine = Engine(backend: backend, recorder: recorder, seed: seed)
        engine.progress = { print("  " + $0) }
        engine.check = { Checking.problems(directory) }
        let failure = await engine.run(scenario)
        await backend.shutdown()
        var checks = [
            RunReport.Check(
                name: "steps", passed: failure == nil, evidence: failure.map { ["\(scenario.file):\($0)"] } ?? [])
        ]
        checks += Checking.results(directory)
        let report = RunReport(scenario: scenario.name, seed: seed, checks: checks, ms: elapsed())
        for c in checks where !c.passed {
            print("  check \(c.name) FAILED")
            for e in c.evidence { print("    \(e)") }
        }
        recorder.log("verdict \(report.passed ? "pass" : "fail") in \(report.ms)ms")
        recorder.close()
        do {
            try report.write(to: directory)
        } catch {
            print("  cannot write \(directory)/report.json: \(error)")
        }
        Interruption.current(nil)
        print("=== \(scenario.name): \(report.passed ? "pass" : "FAIL") in \(String(format: "%.1f", Double(report.ms) / 1000))s")
        return report
    }

    func printSummary(_ rows: [(String, Bool, Int, Int, Int, String)], seed: UInt64) {
        let width = max(8, rows.map(\.0.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        print("")
        print(pad("scenario", width) + "  verdict      time  snapshots-installed  elections")
        for (name, passed, ms, installed, elections, _) in rows {
            print(
                pad(name, width) + "  " + pad(passed ? "pass" : "FAIL", 7) + lpad(String(format: "%.1fs", Double(ms) / 1000), 9)
                    + lpad("\(installed)", 21) + lpad("\(elections)", 11))
        }
        let failed = rows.filter { !$0.1 }.count
        print("\(rows.count - failed) passed, \(failed) failed (seed \(seed); replay with --seed \(seed))")
    }
}

// MARK: check and inspect

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-checks a finished run from its files alone.")

    @Argument(help: "A run directory (RUNS/<scenario>-<seed>).")
    var runDirectory: String

    func run() async throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDir), isDir.boolValue else {
            throw fail("\(runDirectory) is not a directory")
        }
        let results = Checking.results(runDirectory)
        for r in results {
            print("\(r.passed ? "ok  " : "FAIL") \(r.name)")
            for e in r.evidence { print("     \(e)") }
        }
        if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prints a node's data dir, a log, a snapshot file or an events file.")

    @Argument(help: "A node's data dir, a log segment, a snapshot file or events.jsonl.")
    var path: String

    @Flag(help: "One JSON object a line (SPEC section 6).")
    var json = false

    func run() async throws {
        let output = Inspector.inspect(path: path, json: json)
        if let error = output.error { throw fail(error.hasPrefix("inspect: ") ? error : "inspect: " + error) }
        for line in output.lines { print(line) }
        if output.exitCode != 0 { throw ExitCode(output.exitCode) }
    }
}

// MARK: the checker

/// The checker of SPEC section 3 (HarnessCheck).
enum Checking {
    static func results(_ directory: String) -> [RunReport.Check] {
        RunChecker.check(runDirectory: directory).map {
            RunReport.Check(name: $0.name, passed: $0.passed, evidence: $0.evidence, notes: $0.notes)
        }
    }

    static func problems(_ directory: String) -> [String] {
        results(directory).filter { !$0.passed }.flatMap { c in c.evidence.map { "\(c.name): \($0)" } }
    }
}

// MARK: SIGINT and SIGTERM

/// On SIGINT or SIGTERM: every child killed, the current run's report written (failed,
/// interrupted), exit non-zero.
enum Interruption {
    struct Current: Sendable {
        var directory: String
        var scenario: String
        var seed: UInt64
        var started: ContinuousClock.Instant
    }

    private final class Box: @unchecked Sendable {
        let lock = NSLock()
        var current: Current?
        var sources: [any DispatchSourceSignal] = []
    }

    private static let box = Box()

    static func current(_ c: Current?) {
        box.lock.lock()
        box.current = c
        box.lock.unlock()
    }

    static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { interrupted(sig) }
            source.resume()
            box.lock.lock()
            box.sources.append(source)
            box.lock.unlock()
        }
    }

    private static func interrupted(_ sig: Int32) {
        ProcessBackend.killEveryChild()
        box.lock.lock()
        let c = box.current
        box.lock.unlock()
        let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
        if let c {
            let report = RunReport(
                scenario: c.scenario, seed: c.seed,
                checks: [.init(name: "steps", passed: false, evidence: ["interrupted by \(name)"])], ms: c.started.duration(to: .now).ms)
            try? report.write(to: c.directory)
            FileHandle.standardError.write(Data("harness: interrupted by \(name); every node killed; \(c.directory)/report.json written\n".utf8))
        } else {
            FileHandle.standardError.write(Data("harness: interrupted by \(name); every node killed\n".utf8))
        }
        exit(128 + sig)
    }
}

extension Duration {
    var ms: Int {
        let (s, atto) = components
        return Int(s) * 1000 + Int(atto / 1_000_000_000_000_000)
    }
}
