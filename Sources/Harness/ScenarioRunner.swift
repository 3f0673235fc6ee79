import Foundation
import HarnessCheck
import RaftNodeWire

/// The run in progress, for a signal handler that must write its report.
public struct RunInProgress: Sendable {
    public var directory: String
    public var scenario: String
    public var seed: UInt64
    public var started: ContinuousClock.Instant
}

/// What one run gave: its report (as written to report.json) and, when a step failed, which.
public struct RunOutcome: Sendable {
    public var report: RunReport
    public var stepFailure: Engine.StepFailure?
    public var directory: String
}

/// Runs one scenario into a run directory against real processes, then the checker; shared
/// by `harness run` and `harness explore`.
public struct ScenarioRunner: Sendable {
    /// Where a scenario runs: real raft-node processes, or the seeded simulator.
    public enum World: String, Sendable {
        case process, sim
    }

    /// The raft-node binary; nil for the one beside the harness.
    public var nodeBinary: String?
    public var world: World = .process
    /// Makes the process world's back end for a run directory and seed, with the line that
    /// says what it runs (the raft-node binary, the socket directory, the wall time). Given
    /// by the caller (HarnessProcesses.ProcessBackend), so that this module needs no NIO.
    public var processes: (@Sendable (_ directory: String, _ nodeBinary: String?, _ seed: UInt64) throws -> (any ClusterBackend, String))?
    /// The checker of SPEC section 3 over a finished run directory (HarnessCheck's; passed in
    /// so that this module does not depend on it).
    public var checker: @Sendable (String) -> [RunReport.Check]
    /// Where the lines for the person watching go (a line per step and the verdict); nil
    /// for none.
    public var output: (@Sendable (String) -> Void)?
    /// Told of each run as it starts (and nil when it ends), for SIGINT and SIGTERM.
    public var onRun: (@Sendable (RunInProgress?) -> Void)?
    /// In the simulator: a node copies a snapshot file another node wrote for the same
    /// state, index, term and configuration instead of deflating it again. Off only to show
    /// that it changes no byte of a run (a test).
    public var shareIdenticalTakes = true
    /// In the simulator: faults planted in every node besides the one RAFT_FAULT names in a
    /// -DRAFT_FAULTS build (a test's proof that the checker catches them).
    public var plantedFaults: Set<FaultSwitch> = []

    public init(
        nodeBinary: String?, checker: @escaping @Sendable (String) -> [RunReport.Check], output: (@Sendable (String) -> Void)?,
        onRun: (@Sendable (RunInProgress?) -> Void)? = nil,
        processes: (@Sendable (_ directory: String, _ nodeBinary: String?, _ seed: UInt64) throws -> (any ClusterBackend, String))? = nil
    ) {
        self.processes = processes
        self.nodeBinary = nodeBinary
        self.checker = checker
        self.output = output
        self.onRun = onRun
    }

    /// Runs `scenario` with `seed` into `directory` (removed first). When `scenarioText` is
    /// given it is written there as `<name>.scenario`, so that the run can be replayed.
    public func run(_ scenario: Scenario, seed: UInt64, directory: String, scenarioText: String? = nil) async -> RunOutcome {
        let started = ContinuousClock.now
        func elapsed() -> Int { started.duration(to: .now).milliseconds }
        let say = output ?? { _ in }
        say("=== \(scenario.name) (\(scenario.file)), seed \(seed) -> \(directory)")
        try? FileManager.default.removeItem(atPath: directory)
        func keepText() {
            guard let scenarioText else { return }
            try? Data(scenarioText.utf8).write(to: URL(fileURLWithPath: directory + "/" + scenario.name + ".scenario"))
        }
        let recorder: RunDirectoryRecorder
        let backend: any ClusterBackend
        let header: String
        do {
            switch world {
            case .process:
                guard let make = processes else { throw RecorderError(description: "no process back end given to run against processes") }
                (backend, header) = try make(directory, nodeBinary, seed)
                recorder = try RunDirectoryRecorder(directory: directory)
            case .sim:
                let cluster = try SimulatedCluster(runDirectory: directory, seed: seed)
                cluster.shareIdenticalTakes = shareIdenticalTakes
                cluster.plantedFaults.formUnion(plantedFaults)
                backend = cluster
                recorder = try RunDirectoryRecorder(directory: directory, clock: cluster.clock)
                header = "world sim started \(Timestamp.rfc3339(unixMicros: cluster.clock.unixMicros))"
            }
        } catch {
            say("    could not start: \(error)")
            let report = RunReport(
                scenario: scenario.name, seed: seed, world: world.rawValue, checks: [.init(name: "steps", passed: false, evidence: ["\(error)"])],
                ms: elapsed())
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            keepText()
            try? report.write(to: directory)
            return RunOutcome(
                report: report, stepFailure: Engine.StepFailure(line: 0, text: "start", message: "\(error)"), directory: directory)
        }
        keepText()
        onRun?(RunInProgress(directory: directory, scenario: scenario.name, seed: seed, started: started))
        // `started` gives the wall time of the step times below (seconds since it).
        recorder.log("scenario \(scenario.name) file \(scenario.file) seed \(seed) \(header)")
        let engine = Engine(backend: backend, recorder: recorder, seed: seed)
        if let output { engine.progress = { output("  " + $0) } }
        let checker = self.checker
        engine.check = { checker(directory).filter { !$0.passed }.flatMap { c in c.evidence.map { "\(c.name): \($0)" } } }
        let failure: Engine.StepFailure?
        let runMs: () -> Int
        switch backend {
        case let cluster as SimulatedCluster:
            let box = EngineBox(engine: engine, scenario: scenario)
            do {
                failure = try await cluster.run {
                    let f = await box.engine.run(box.scenario)
                    await cluster.shutdown()
                    return f
                }
            } catch {
                failure = Engine.StepFailure(line: 0, text: "simulation", message: "\(error)")
            }
            let clock = cluster.clock
            runMs = { clock.nowMs }
        default:
            failure = await engine.run(scenario)
            await backend.shutdown()
            runMs = elapsed
        }
        var checks = [
            RunReport.Check(
                name: "steps", passed: failure == nil, evidence: failure.map { ["\(scenario.file):\($0)"] } ?? [],
                verified: [.init("steps", engine.stepsDone)], firstViolationAt: failure?.atUnixMicros)
        ]
        checks += checker(directory)
        let report = RunReport(scenario: scenario.name, seed: seed, world: world.rawValue, checks: checks, ms: runMs())
        for c in checks where !c.passed {
            say("  check \(c.name) \(c.unknown ? "UNKNOWN (ran out of its bound: no pass)" : "FAILED")")
            for e in c.evidence { say("    \(e)") }
        }
        recorder.log("verdict \(report.verdict) in \(report.ms)ms")
        recorder.close()
        do {
            try report.write(to: directory)
        } catch {
            say("  cannot write \(directory)/report.json: \(error)")
        }
        // The run as a picture (SPEC section 3), from the files just written.
        do {
            try HarnessCheck.RunReport.write(runDirectory: directory)
        } catch {
            say("  cannot write \(directory)/report.html: \(error)")
        }
        onRun?(nil)
        say("=== \(scenario.name): \(report.verdict == "pass" ? "pass" : report.verdict.uppercased()) in \(String(format: "%.1f", Double(report.ms) / 1000))s")
        return RunOutcome(report: report, stepFailure: failure, directory: directory)
    }
}

/// The engine handed to the simulator's thread, which alone runs it.
private struct EngineBox: @unchecked Sendable {
    let engine: Engine
    let scenario: Scenario
}
