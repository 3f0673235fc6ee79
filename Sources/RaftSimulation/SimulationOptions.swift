import Raft

/// What one schedule does. `derived(seed:)` draws everything from the seed, so a seed alone
/// names a schedule.
public struct SimulationOptions: Sendable, Hashable {
    public var nodeCount: Int = 3
    /// Simulated milliseconds of faults and load.
    public var duration: Int = 10_000
    /// Simulated milliseconds after every fault is healed and every node restarted, in which
    /// the cluster must elect a leader and converge.
    public var settleDuration: Int = 6_000
    public var tickMs: Int = 10
    public var settings = Settings()
    public var dropRate: Double = 0.01
    public var duplicateRate: Double = 0.01
    public var maxDelay: Int = 10
    /// Mean simulated milliseconds between two faults.
    public var faultInterval: Int = 300
    /// Chance that a step is cut short by a crash between two of its actions.
    public var midStepCrashRate: Double = 0.001
    public var membershipChanges = true
    public var partitions = true
    public var crashes = true
    /// Milliseconds between client proposals.
    public var clientInterval: Int = 25

    public init() {}

    /// The schedule of `seed`: 3, 5 or 7 nodes, small snapshot thresholds and chunks so that
    /// snapshots are taken and sent often, and a random mix of faults.
    public static func derived(seed: UInt64, mutations: Set<Settings.Mutation> = []) -> SimulationOptions {
        var rng = SeededRandom(seed: seed &* 0x2545_f491_4f6c_dd1d)
        var o = SimulationOptions()
        o.nodeCount = [3, 5, 7][Int(seed % 3)]
        o.settings.snapshotThreshold = Int.random(in: 8...60, using: &rng)
        o.settings.snapshotTrailing = Int.random(in: 0...20, using: &rng)
        o.settings.snapshotChunkSize = Int.random(in: 16...400, using: &rng)
        o.settings.snapshotWindow = Int.random(in: 1...4, using: &rng)
        o.settings.maxEntriesPerRequest = Int.random(in: 1...30, using: &rng)
        o.settings.maxInflight = Int.random(in: 1...8, using: &rng)
        o.settings.mutations = mutations
        o.dropRate = Double.random(in: 0...0.06, using: &rng)
        o.duplicateRate = Double.random(in: 0...0.03, using: &rng)
        o.maxDelay = Int.random(in: 2...30, using: &rng)
        o.faultInterval = Int.random(in: 150...700, using: &rng)
        o.midStepCrashRate = rng.chance(0.5) ? 0.002 : 0
        o.clientInterval = Int.random(in: 10...50, using: &rng)
        if o.settings.maxEntriesPerRequest * o.settings.maxInflight < 6 {
            // A trickle of a pipeline: keep the load below what it can carry, or the backlog
            // never drains and the schedule tells nothing about Raft.
            o.clientInterval = Int.random(in: 50...90, using: &rng)
        }
        return o
    }
}
