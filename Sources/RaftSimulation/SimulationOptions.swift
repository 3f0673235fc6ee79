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
    /// Chance that a message is held back far longer than `maxDelay` (a stalled link or
    /// process), so that stale messages arrive in later terms.
    public var longDelayRate: Double = 0.01
    public var longDelay: ClosedRange<Int> = 100...800
    /// Chance that a new leader crashes within a few round trips of its election, while its
    /// NOP and older entries are half replicated (Raft paper, figure 8).
    public var newLeaderCrashRate: Double = 0
    /// How long a crashed node stays down.
    public var downtime: ClosedRange<Int> = 20...2000
    /// When the faults end, a follower stays down this long under the steady writes, so
    /// that it comes back to a snapshot (nil: none).
    public var laggardDowntime: ClosedRange<Int>? = nil
    /// How long a follower takes to install a snapshot it received (check it, make it
    /// durable, restore the state): seconds for a large state on a real node.
    public var installTime: ClosedRange<Int> = 0...30
    /// Bytes of filler in each written value, so that states and snapshots span many chunks.
    public var valueBytes: Int = 0

    /// Simulated milliseconds of steady writes after the faults end, in which no member may
    /// chase snapshots (install one after another, never replicating between them): long
    /// enough for a restarted member to be sent a snapshot and install it twice over.
    public var loadWindow: Int { max(settleDuration / 2, 2 * installTime.upperBound + 1_000) + (laggardDowntime?.upperBound ?? 0) }

    public init() {}

    /// The schedule of `seed`: 3, 5 or 7 nodes, small snapshot thresholds and chunks so that
    /// snapshots are taken and sent often, and a random mix of faults.
    /// With `storm` set, every schedule is a storm (faults every few heartbeats); otherwise
    /// the seed picks (about a third are).
    public static func derived(seed: UInt64, mutations: Set<Settings.Mutation> = [], storm: Bool? = nil) -> SimulationOptions {
        var rng = SeededRandom(seed: seed &* 0x2545_f491_4f6c_dd1d)
        var o = SimulationOptions()
        o.nodeCount = [3, 5, 7][Int(seed % 3)]
        o.settings.snapshotThreshold = Int.random(in: 8...60, using: &rng)
        // A quarter of the schedules make every snapshot after the first wait for as many
        // applied bytes as the newest file holds (the files here are far below the default
        // 1 MiB). From the seed, not the generator, so the other schedules stay as they were.
        o.settings.snapshotAmortizeFrom = seed % 4 == 1 ? 1 : 0
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
        o.longDelayRate = Double.random(in: 0...0.03, using: &rng)
        let isStorm = rng.chance(0.3)
        if storm ?? isStorm {
            // A storm: faults every few heartbeats, short downtimes, one entry a request.
            o.faultInterval = Int.random(in: 40...150, using: &rng)
            o.downtime = 5...400
            o.midStepCrashRate = 0.01
            o.settings.maxEntriesPerRequest = Int.random(in: 1...3, using: &rng)
            o.newLeaderCrashRate = 0.5
        }
        o.clientInterval = Int.random(in: 10...50, using: &rng)
        // A third of the schedules install slowly, longer than four election timeouts, and a
        // third write values large enough that a snapshot is many chunks.
        if rng.chance(0.33) { o.installTime = 200...Int.random(in: 800...2_500, using: &rng) }
        if rng.chance(0.33) { o.valueBytes = Int.random(in: 40...400, using: &rng) }
        // A third of the schedules keep little beyond the trailing entries for a follower
        // that is catching up, so that lagging members need snapshots (a leader keeps 64 MiB
        // by default, more than any schedule writes). They may chase snapshots under steady
        // writes (the retention is what prevents that), so the chase check skips them.
        if rng.chance(0.33) { o.settings.maxRetainedBytes = Int.random(in: 0...4_096, using: &rng) }
        if rng.chance(0.7) { o.laggardDowntime = 600...1_500 }
        if o.settings.maxEntriesPerRequest * o.settings.maxInflight < 6 {
            // A trickle of a pipeline: keep the load below what it can carry, or the backlog
            // never drains and the schedule tells nothing about Raft.
            o.clientInterval = Int.random(in: 50...90, using: &rng)
        }
        return o
    }
}
