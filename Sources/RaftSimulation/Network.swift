import Raft

/// The simulated network of both simulators: partition groups, and when a message arrives
/// (dropped, delayed, held back long, or duplicated), at the schedule's rates. Only the
/// arrival times are decided here; each simulator queues its own delivery events.
struct SimulatedNetwork {
    /// Partition groups: a message crosses only between nodes of the same group.
    private(set) var group: [NodeID: Int] = [:]

    /// When a message sent at `now` from `from` to `to` arrives: never (dropped, or across a
    /// partition), once, or twice (a duplicate). `extra` is added to every delay (a slow
    /// node's link).
    func arrivals(from: NodeID, to: NodeID, now: Int, extra: Int = 0, options: SimulationOptions, rng: inout SeededRandom) -> [Int] {
        guard (group[from] ?? 0) == (group[to] ?? 0) else { return [] }
        guard !rng.chance(options.dropRate) else { return [] }
        if rng.chance(options.longDelayRate) { return [now + extra + Int.random(in: options.longDelay, using: &rng)] }
        var times = [now + extra + 1 + Int(rng.next() % UInt64(max(1, options.maxDelay)))]
        if rng.chance(options.duplicateRate) { times.append(now + extra + 1 + Int(rng.next() % UInt64(max(1, options.maxDelay * 3)))) }
        return times
    }

    /// Puts each of `ids` on the far side with chance 0.4; answers who is there.
    mutating func partition(_ ids: [NodeID], rng: inout SeededRandom) -> [NodeID] {
        group.removeAll()
        for id in ids where rng.chance(0.4) { group[id] = 1 }
        return group.keys.sorted()
    }

    mutating func isolate(_ id: NodeID) {
        group.removeAll()
        group[id] = 2
    }

    mutating func heal() { group.removeAll() }
}
