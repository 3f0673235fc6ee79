import ArgumentParser
import Raft
import RaftSimulation

/// `raft-sim`: runs seeded simulation schedules, or replays one with a trace.
@main
struct RaftSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-sim",
        abstract: "Runs seeded Raft simulation schedules and checks safety after every step.",
        discussion: """
            Each seed decides a whole schedule (cluster size, delays, drops, partitions, crashes, \
            membership changes, client load), so a failing seed replays exactly:
              raft-sim --seed 1234 --trace
            """)

    @Option(help: "Run this one seed.")
    var seed: UInt64?

    @Option(help: "First seed of a range.")
    var from: UInt64 = 1

    @Option(help: "How many seeds to run from --from.")
    var count: UInt64 = 1000

    @Option(name: .customLong("mutation"), help: "Turn off a safety rule on purpose: \(Settings.Mutation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var mutations: [String] = []

    @Flag(help: "Make every schedule a storm: faults every few heartbeats, short downtimes.")
    var storm = false

    @Flag(help: "Host node machines (the core and everything the node shell decides: client requests and their deadlines, pending writes, snapshot take, serve and restore, status) instead of bare cores, under client load with reads, pauses, large states and slow learners.")
    var machines = false

    @Flag(help: "Print every step of the schedule.")
    var trace = false

    @Flag(help: "Print a line for every seed, not only failures.")
    var verbose = false

    mutating func run() throws {
        var broken: Set<Settings.Mutation> = []
        for m in mutations {
            guard let mutation = Settings.Mutation(rawValue: m) else {
                throw ValidationError("unknown mutation '\(m)'; known: \(Settings.Mutation.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            broken.insert(mutation)
        }
        let seeds = seed.map { $0...$0 } ?? from...(from + max(count, 1) - 1)
        var failed = 0
        var steps = 0
        for s in seeds {
            let result: SimulationResult
            if machines {
                let sim = MachineSimulation(seed: s, mutations: broken, storm: storm ? true : nil)
                if trace { sim.trace = { print($0) } }
                result = sim.run()
            } else {
                let sim = Simulation(seed: s, options: .derived(seed: s, mutations: broken, storm: storm ? true : nil))
                if trace { sim.trace = { print($0) } }
                result = sim.run()
            }
            steps += result.steps
            if !result.passed {
                failed += 1
                let flags = mutations.map { " --mutation \($0)" }.joined() + (storm ? " --storm" : "") + (machines ? " --machines" : "")
                print("\(result)\n  replay: swift run raft-sim --seed \(s)\(flags) --trace")
            } else if verbose || seed != nil {
                print(result)
            }
        }
        print("\(seeds.count) schedules, \(steps) steps: \(seeds.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
