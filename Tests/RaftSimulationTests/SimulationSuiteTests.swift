import Foundation
import Raft
import RaftSimulation
import Testing

/// Runs seeds `range` on every core, returning the results in seed order.
///
/// Each worker is a thread of its own, not a task: a minute of CPU-bound work on the
/// cooperative pool (as many threads as cores) would starve the async tests that run beside
/// it, whose safety-net timeouts would then expire for nothing.
func runSchedules(_ seeds: [UInt64], mutations: Set<Settings.Mutation> = [], storm: Bool? = nil, machines: Bool = false) async -> [SimulationResult] {
    let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
    return await withTaskGroup(of: [SimulationResult].self) { group in
        for w in 0..<workers {
            let mine = seeds.enumerated().filter { $0.offset % workers == w }.map(\.element)
            group.addTask {
                await withCheckedContinuation { continuation in
                    Thread.detachNewThread {
                        continuation.resume(returning: mine.map {
                            machines
                                ? MachineSimulation(seed: $0, mutations: mutations, storm: storm).run()
                                : Simulation(seed: $0, options: .derived(seed: $0, mutations: mutations, storm: storm)).run()
                        })
                    }
                }
            }
        }
        var all: [SimulationResult] = []
        for await part in group { all += part }
        return all.sorted { $0.seed < $1.seed }
    }
}

@Suite("Seeded simulation")
struct SimulationSuiteTests {
    /// How many schedules `make test` runs; RAFT_SIM_SEEDS and RAFT_SIM_FROM change it.
    static let seedCount = UInt64(ProcessInfo.processInfo.environment["RAFT_SIM_SEEDS"] ?? "") ?? 1000
    static let firstSeed = UInt64(ProcessInfo.processInfo.environment["RAFT_SIM_FROM"] ?? "") ?? 1

    @Test("Every safety property holds after every step of 1,000 seeded schedules, and each converges")
    func seededSchedulesHoldEverySafetyProperty() async {
        let seeds = Array(Self.firstSeed..<(Self.firstSeed + Self.seedCount))
        let started = ContinuousClock.now
        let results = await runSchedules(seeds)
        let failed = results.filter { !$0.passed }
        for r in failed {
            Issue.record("\(r)\n  replay: swift run raft-sim --seed \(r.seed) --trace")
        }
        let total = results.reduce(into: (steps: 0, elections: 0, taken: 0, installed: 0, configs: 0, crashes: 0, partitions: 0, acked: 0)) {
            $0.steps += $1.steps
            $0.elections += $1.elections
            $0.taken += $1.snapshotsTaken
            $0.installed += $1.snapshotsInstalled
            $0.configs += $1.configChanges
            $0.crashes += $1.crashes
            $0.partitions += $1.partitions
            $0.acked += $1.writesAcknowledged
        }
        let sizes = Dictionary(grouping: results, by: \.nodeCount).mapValues(\.count)
        print("""
            simulation: \(results.count) seeded schedules (seeds \(seeds.first!)...\(seeds.last!)), \(total.steps) steps, \
            \(results.count - failed.count) held every check, \(failed.count) failed, in \(started.duration(to: .now))
            simulation: \(total.elections) elections, \(total.taken) snapshots taken, \(total.installed) installed from a leader, \
            \(total.configs) configuration changes committed by a leader, \(total.crashes) crashes, \(total.partitions) partitions, \
            \(total.acked) writes acknowledged; clusters of 3/5/7: \(sizes[3] ?? 0)/\(sizes[5] ?? 0)/\(sizes[7] ?? 0)
            """)
        #expect(failed.isEmpty)
        // Each schedule is long enough to exercise what it is for.
        let n = Double(max(1, results.count))
        // (Seeds 1...1000 average about 10 elections, 5 installs, 9 configuration changes; 878 of
        // them have at least 2, 1 and 2.)
        #expect(Double(total.elections) / n >= 5, "elections per schedule")
        #expect(Double(total.installed) / n >= 4, "snapshot installs per schedule")
        #expect(Double(total.configs) / n >= 5, "configuration changes per schedule")
        #expect(Double(total.crashes) / n >= 5, "crashes per schedule")
        #expect(results.filter { $0.elections >= 2 && $0.snapshotsInstalled >= 1 && $0.configChanges >= 2 }.count >= results.count * 85 / 100)
        #expect(Set(results.map(\.nodeCount)) == [3, 5, 7])
    }

    /// How many schedules of node machines `make test` runs (RAFT_SIM_MACHINE_SEEDS).
    static let machineSeedCount = UInt64(ProcessInfo.processInfo.environment["RAFT_SIM_MACHINE_SEEDS"] ?? "") ?? 300

    @Test("Node machines (core and shell) hold every check in 300 seeded schedules: answers, reads, snapshots, convergence")
    func machineSchedulesHoldEveryCheck() async {
        let seeds = Array(Self.firstSeed..<(Self.firstSeed + Self.machineSeedCount))
        let started = ContinuousClock.now
        let results = await runSchedules(seeds, machines: true)
        let failed = results.filter { !$0.passed }
        for r in failed {
            Issue.record("\(r)\n  replay: swift run raft-sim --seed \(r.seed) --machines --trace")
        }
        let answers = results.reduce(0) { $0 + $1.clientAnswers }
        let reads = results.reduce(0) { $0 + $1.readsChecked }
        let installed = results.reduce(0) { $0 + $1.snapshotsInstalled }
        let configs = results.reduce(0) { $0 + $1.configChanges }
        print("""
            simulation of node machines: \(results.count) schedules, \(results.count - failed.count) held every check, \(failed.count) failed, \
            in \(started.duration(to: .now)); \(answers) client answers, \(reads) reads checked against the log, \(installed) snapshots \
            installed, \(configs) configuration changes committed
            """)
        #expect(failed.isEmpty)
        // Every schedule of a passing run did what it is for (a pass over nothing would show).
        let n = max(1, results.count)
        #expect(answers / n >= 300, "client answers per schedule")
        #expect(reads / n >= 30, "reads checked per schedule")
        #expect(installed / n >= 3, "snapshot installs per schedule")
        #expect(configs / n >= 4, "configuration changes per schedule")
    }

    @Test("A seed of node machines replays exactly")
    func machineSeedReplaysExactly() {
        let a = MachineSimulation(seed: 4242).run()
        let b = MachineSimulation(seed: 4242).run()
        #expect(a.description == b.description)
        #expect(a.steps == b.steps && a.finalCommitIndex > 0 && a.clientAnswers > 0)
    }

    @Test("A seed replays exactly")
    func seedReplaysExactly() {
        let a = Simulation(seed: 4242).run()
        let b = Simulation(seed: 4242).run()
        #expect(a.description == b.description)
        #expect(a.steps == b.steps && a.finalCommitIndex == b.finalCommitIndex && a.finalCommitIndex > 0)
    }

    /// Swift seeds its hashing per process, so a Set or Dictionary iterated where order
    /// matters (the order of sends) makes a seed's schedule differ from one process to the
    /// next: `raft-sim --seed N` would not replay a failure the suite found. Two processes,
    /// one with a fixed hashing seed and one with a random one, must print the same thing.
    @Test("A seed replays exactly in another process (hashing seeded differently)")
    func seedReplaysAcrossProcesses() throws {
        for machines in [false, true] { try replaysAcrossProcesses(machines: machines) }
    }

    func replaysAcrossProcesses(machines: Bool) throws {
        let sim = try #require(Self.raftSimPath(), "raft-sim is not built: swift build --build-tests builds it")
        func run(deterministicHashing: Bool) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: sim)
            p.arguments = ["--from", "1", "--count", "60", "--verbose"] + (machines ? ["--machines"] : [])
            var env = ProcessInfo.processInfo.environment
            env["SWIFT_DETERMINISTIC_HASHING"] = deterministicHashing ? "1" : nil
            p.environment = env
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        let fixed = try run(deterministicHashing: true)
        let random = try run(deterministicHashing: false)
        #expect(fixed.split(separator: "\n").count >= 60)
        #expect(fixed == random)
    }

    static func raftSimPath() -> String? {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        var bundle = Bundle.main.bundleURL
        for _ in 0..<4 {
            dirs.append(bundle)
            bundle.deleteLastPathComponent()
        }
        return dirs.map { $0.appendingPathComponent("raft-sim").path }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test("Different seeds make different schedules")
    func seedsDiffer() {
        let a = Simulation(seed: 7).run()
        let b = Simulation(seed: 8).run()
        #expect(a.steps != b.steps || a.finalCommitIndex != b.finalCommitIndex)
    }
}
