import ArgumentParser
import CommandLineSupport
import Foundation
import Harness
import HarnessProcesses
import HarnessCheck
import RaftNodeWire

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
        abstract: "Runs Raft scenarios against real raft-node processes or in the seeded simulator, explores random ones, and checks the runs.",
        subcommands: [Run.self, Explore.self, Check.self, Report.self, Inspect.self])

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
        abstract: "Runs scenario files, each into RUNS/<scenario>-<seed>/ (-sim/ in the simulator); exit 0 only if every one passed.")

    @Argument(help: "Scenario files (.scenario).")
    var files: [String]

    @Flag(help: "Run in the seeded simulator (simulated time, the same node machines over a simulated network) instead of processes.")
    var sim = false

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
        if !sim {
            if let raftNode, !FileManager.default.isExecutableFile(atPath: raftNode) { throw fail("--raft-node \(raftNode) is not an executable file") }
            guard raftNode != nil || ProcessBackend.locateNodeBinary() != nil else {
                throw fail("cannot find raft-node beside the harness; build it (swift build) or pass --raft-node PATH")
            }
        }
        let seed = self.seed ?? UInt64.random(in: 1...999_999)
        Interruption.install()
        print("harness: \(scenarios.count) scenario(s), seed \(seed), \(sim ? "in the simulator" : "against processes"), runs in \(runs)/")
        var rows: [(String, String, Int, Int, Int, String)] = []
        var runner = ScenarioRunner(
            nodeBinary: raftNode, checker: { Checking.results($0) }, output: { print($0) }, onRun: { Interruption.current($0) }, processes: ProcessBackend.maker)
        runner.world = sim ? .sim : .process
        let world = sim ? "sim" : "process"
        for scenario in scenarios {
            guard scenario.runs(in: world) else {
                print("=== \(scenario.name): skipped (# world: \(scenario.world ?? "?"); this run is in the \(sim ? "simulator" : "process world"))")
                continue
            }
            let dir = runs + "/" + scenario.name + "-\(seed)" + (sim ? "-sim" : "")
            let report = await runner.run(scenario, seed: seed, directory: dir).report
            let counts = runCounts(dir)
            rows.append((scenario.name, report.verdict, report.ms, counts.snapshotsInstalled, counts.elections, dir))
        }
        printSummary(rows, seed: seed)
        // An unknown verdict (a check that could not finish) is no pass.
        if rows.contains(where: { $0.1 != "pass" }) { throw ExitCode(1) }
    }

    func printSummary(_ rows: [(String, String, Int, Int, Int, String)], seed: UInt64) {
        let width = max(8, rows.map(\.0.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
        print("")
        print(pad("scenario", width) + "  verdict      time  snapshots-installed  elections")
        for (name, verdict, ms, installed, elections, _) in rows {
            print(
                pad(name, width) + "  " + pad(verdict == "pass" ? "pass" : verdict.uppercased(), 7) + lpad(String(format: "%.1fs", Double(ms) / 1000), 9)
                    + lpad("\(installed)", 21) + lpad("\(elections)", 11))
        }
        let failed = rows.filter { $0.1 == "fail" }.count
        let unknown = rows.filter { $0.1 == "unknown" }.count
        print("\(rows.count - failed - unknown) passed, \(failed) failed\(unknown > 0 ? ", \(unknown) unknown (a check ran out of its bound: no pass)" : "") (seed \(seed); replay with --seed \(seed))")
    }
}

// MARK: explore

struct Explore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generates random scenarios, runs and checks each against real processes (or in the simulator: --sim), and shrinks failures to minimal.scenario.",
        discussion: """
            Scenario i of seed S is the same file in any process: RUNS/explore-S-i-<run seed>/explore-S-i.scenario \
            (replay it with harness run FILE --seed <run seed>). Each ends with a liveness phase (marked '# liveness'): \
            heal, resume, start, a leader, writes, await converged; the checker runs after it. A failure is shrunk \
            to minimal.scenario in its run directory (tries under its shrink/). Prints a line a scenario and a summary \
            with failures by check and the coverage of target states. Exit 0 when every scenario passed, 1 otherwise.
            """)

    @Option(help: "Seed of the generated scenarios and of their runs; random by default.")
    var seed: UInt64?

    @Option(help: "Scenarios to run (default 10 when --for is not given).")
    var count: Int?

    @Option(name: .customLong("for"), help: "Run new scenarios until this much time has passed (e.g. 15m, 1h).")
    var duration: String?

    @Option(help: "Directory for the run directories.")
    var runs = "runs"

    @Option(name: .customLong("raft-node"), help: "The raft-node binary (default: beside harness).")
    var raftNode: String?

    @Option(name: .customLong("shrink-budget"), help: "Time to shrink each failure (0: do not shrink).")
    var shrinkBudget = "20m"

    @Option(name: .customLong("shrink-tries"), help: "Runs of a variant before it counts as passing (it fails on the first failing run).")
    var shrinkTries = 3

    @Option(name: .customLong("stop-after-failures"), help: "Stop after this many failures (each shrunk first).")
    var stopAfterFailures: Int?

    @Flag(name: .customLong("keep-passing"), help: "Keep the nodes' data dirs of passing runs (removed by default; the rest of the run directory stays).")
    var keepPassing = false

    @Flag(help: "Print every step, as harness run does.")
    var verbose = false

    @Flag(name: .customLong("dry-run"), help: "Print the generated scenarios; run nothing.")
    var dryRun = false

    @Option(name: .customLong("max-value-size"), help: "Generate no value-size above this (e.g. 1KiB; at least 100 B): no big profile below 32KiB. Default: the full range, up to 64KiB.")
    var maxValueSize: String?

    @Option(help: "With --sim: scenarios run at once (default: one per core). Their lines and the summary are the same with any number.")
    var jobs: Int?

    @Flag(help: "Run in the seeded simulator: a variant runs once while shrinking (a seed replays exactly), only failures keep their run directories, and each minimal scenario is then run against processes.")
    var sim = false

    func validate() throws {
        if count != nil && duration != nil { throw ValidationError("give --count or --for, not both") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let duration, parseBudget(duration) == nil { throw ValidationError("--for '\(duration)' is not a duration like 90s, 15m or 1h") }
        if parseBudget(shrinkBudget) == nil { throw ValidationError("--shrink-budget '\(shrinkBudget)' is not a duration like 20m") }
        if shrinkTries < 1 { throw ValidationError("--shrink-tries must be at least 1") }
        if let stopAfterFailures, stopAfterFailures < 1 { throw ValidationError("--stop-after-failures must be at least 1") }
        if let jobs {
            if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
            if !sim { throw ValidationError("--jobs is for --sim only (against processes the nodes need the cores)") }
        }
        if let maxValueSize {
            guard let n = parseSize(maxValueSize) else { throw ValidationError("--max-value-size '\(maxValueSize)' is not a size like 1KiB or 400") }
            if n < ExploreGenerator.smallestMaxValueSize {
                throw ValidationError("--max-value-size must be at least \(ExploreGenerator.smallestMaxValueSize) bytes (the default value size)")
            }
        }
    }

    func run() async throws {
        if let raftNode, !FileManager.default.isExecutableFile(atPath: raftNode) { throw fail("--raft-node \(raftNode) is not an executable file") }
        guard raftNode != nil || ProcessBackend.locateNodeBinary() != nil else {
            throw fail("cannot find raft-node beside the harness; build it (swift build) or pass --raft-node PATH")
        }
        var options = ExploreOptions(
            seed: seed ?? UInt64.random(in: 1...999_999), count: count, forMs: duration.flatMap(parseBudget), runs: runs,
            shrinkBudgetMs: parseBudget(shrinkBudget) ?? 0, shrinkTries: shrinkTries, stopAfterFailures: stopAfterFailures,
            keepPassing: keepPassing, verbose: verbose)
        options.sim = sim
        options.maxValueSize = maxValueSize.flatMap(parseSize)
        if sim { options.jobs = jobs ?? ProcessInfo.processInfo.activeProcessorCount }
        // Flushed a line at a time, so that a pipe (make explore | tee) shows each scenario.
        let printLine: @Sendable (String) -> Void = { line in
            print(line)
            fflush(nil)
        }
        if dryRun {
            var o = options
            o.dryRun = true
            let runner = ScenarioRunner(nodeBinary: raftNode, checker: { _ in [] }, output: nil, processes: ProcessBackend.maker)
            _ = await ExploreRunner(options: o, runner: runner, say: printLine).run()
            return
        }
        Interruption.install()
        let output = verbose ? printLine : nil
        var runner = ScenarioRunner(
            nodeBinary: raftNode, checker: { Checking.results($0) }, output: output, onRun: { Interruption.current($0) }, processes: ProcessBackend.maker)
        var explorer = ExploreRunner(options: options, runner: runner, say: printLine)
        if sim {
            explorer.confirm = runner
            runner.world = .sim
            explorer.runner = runner
        }
        let summary = await explorer.run()
        if !summary.failures.isEmpty { throw ExitCode(1) }
    }
}

// MARK: check and inspect

/// A run directory argument that is not a directory: one clear line, non-zero exit.
func requireDirectory(_ path: String) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
        throw fail("\(path) is not a directory")
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-checks a finished run from its files alone.")

    @Argument(help: "A run directory (RUNS/<scenario>-<seed>).")
    var runDirectory: String

    func run() async throws {
        try requireDirectory(runDirectory)
        let results = Checking.results(runDirectory)
        for r in results {
            let counts = r.verified.map { "\($0.count) \($0.what)" }.joined(separator: ", ")
            let status = r.passed ? "ok  " : r.unknown ? "UNKN" : "FAIL"
            print("\(status) \(r.name)" + (counts.isEmpty ? "" : " (verified \(counts))") + (r.passed && r.verifiedNothing ? ": nothing to verify" : ""))
            for e in r.evidence { print("     \(e)") }
        }
        if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Writes RUN_DIR/report.html: the run as a picture (a lane per node, faults, configurations, snapshots, client operations, the first error); prints its path.",
        discussion: """
            One self-contained file (no network): open it in a browser. It reads harness.log, report.json, \
            history.jsonl and nodes/*/events.jsonl (the checker runs when report.json is missing).
            """)

    @Argument(help: "A run directory (RUNS/<scenario>-<seed>).")
    var runDirectory: String

    func run() async throws {
        try requireDirectory(runDirectory)
        let known = ["harness.log", "report.json", "history.jsonl", "nodes"].filter { FileManager.default.fileExists(atPath: runDirectory + "/" + $0) }
        guard !known.isEmpty else { throw fail("\(runDirectory) is not a run directory (no harness.log, report.json, history.jsonl or nodes/)") }
        do {
            print(try RunReport.write(runDirectory: runDirectory))
        } catch {
            throw fail("cannot write \(runDirectory)/report.html: \(error)")
        }
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
    static func results(_ directory: String) -> [CheckResult] { RunChecker.check(runDirectory: directory) }
}

// MARK: SIGINT and SIGTERM

/// On SIGINT or SIGTERM: every child killed, the current run's report written (failed,
/// interrupted), exit non-zero.
enum Interruption {
    typealias Current = RunInProgress

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
            let report = Harness.RunReport(
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
