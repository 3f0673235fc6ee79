import Raft
import RaftSimulation
import Testing

/// Proof that the simulator bites: with one safety rule turned off on purpose, some seed
/// of a storm schedule breaks a safety property, and the same seed holds with the rule on.
@Suite("The simulator finds broken rules")
struct MutationTests {
    /// Storm schedules searched for a violation; the search stops at the first.
    static let searchLimit: UInt64 = 1200

    static func firstSafetyViolation(_ mutation: Settings.Mutation, machines: Bool) async -> SimulationResult? {
        var from: UInt64 = 1
        while from <= searchLimit {
            let batch = Array(from..<min(from + 40, searchLimit + 1))
            let results = await runSchedules(batch, mutations: [mutation], storm: true, machines: machines)
            if let hit = results.first(where: { $0.violations.contains { $0.kind != .liveness } }) { return hit }
            from += 40
        }
        return nil
    }

    @Test("A safety rule turned off is found by the simulator (of bare cores, and of node machines), and the same seed holds with it on",
        arguments: [Settings.Mutation.goraftVote, .commitOldTermByCounting, .configOnCommit], [false, true])
    func brokenRuleIsFound(_ mutation: Settings.Mutation, machines: Bool) async throws {
        let hit = try #require(
            await Self.firstSafetyViolation(mutation, machines: machines), "no seed up to \(Self.searchLimit) broke a safety property with \(mutation.rawValue)")
        let violation = try #require(hit.violations.first { $0.kind != .liveness })
        print("mutation \(mutation.rawValue): seed \(hit.seed) breaks it: \(violation)  (replay: swift run raft-sim --seed \(hit.seed) --storm --mutation \(mutation.rawValue)\(machines ? " --machines" : "") --trace)")
        switch mutation {
        case .goraftVote:
            #expect([.electionSafety, .logMatching, .committedChanged, .leaderCompleteness, .lostWrite, .stateMachineSafety].contains(violation.kind))
        case .commitOldTermByCounting, .configOnCommit, .readWithoutConfirmation:
            #expect(violation.kind != .shell)
        }
        // The same schedule with every rule in force holds.
        let clean = machines
            ? MachineSimulation(seed: hit.seed, storm: true).run()
            : Simulation(seed: hit.seed, options: .derived(seed: hit.seed, storm: true)).run()
        #expect(clean.passed, "\(clean)")
    }

    @Test("Reads answered without a confirming round are found stale by the simulator of node machines (the bare cores' clients do not read), and the same seed holds with the round")
    func readsWithoutConfirmationAreFound() async throws {
        let hit = try #require(
            await Self.firstSafetyViolation(.readWithoutConfirmation, machines: true),
            "no seed up to \(Self.searchLimit) broke a safety property with read-without-confirmation")
        let violation = try #require(hit.violations.first { $0.kind != .liveness })
        print("mutation read-without-confirmation: seed \(hit.seed) breaks it: \(violation)  (replay: swift run raft-sim --seed \(hit.seed) --storm --mutation read-without-confirmation --machines --trace)")
        #expect(violation.kind == .stateMachineSafety && "\(violation)".contains("stale read"), "\(violation)")
        #expect(MachineSimulation(seed: hit.seed, storm: true).run().passed)
    }
}
