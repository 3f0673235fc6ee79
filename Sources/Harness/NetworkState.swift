import Raft

/// The network as the scenario sets it: which directed links are cut, and the loss and delay
/// of every link. Read by the proxies for each frame.
public final class NetworkState: Sendable {
    private struct State {
        /// Each node's group while a partition is in place; nodes not named are group -1.
        var groups: [String: Int]?
        /// Nodes cut off from every other (`isolate`), on top of the partition.
        var isolated: Set<String> = []
        var lossPercent: Double = 0
        var delayMs: ClosedRange<Int>?
        var rng: SeededRandom
    }

    private let state: Locked<State>

    public init(seed: UInt64) {
        state = Locked(State(groups: nil, rng: SeededRandom(seed: seed ^ 0x6e65_7477_6f72_6b)))
    }

    /// Groups that reach each other; every other node is in one more group. It replaces
    /// every cut in place (isolated nodes included); nil heals.
    public func partition(_ groups: [[String]]?) {
        state.withLockedValue { s in
            s.isolated = []
            guard let groups else {
                s.groups = nil
                return
            }
            var map: [String: Int] = [:]
            for (i, g) in groups.enumerated() { for n in g { map[n] = i } }
            s.groups = map
        }
    }

    public func setLoss(percent: Double, delayMs: ClosedRange<Int>?) {
        state.withLockedValue { s in
            s.lossPercent = percent
            s.delayMs = delayMs
        }
    }

    /// Cuts every link to and from `name`, adding to the cuts in place.
    public func isolate(_ name: String) {
        state.withLockedValue { s in _ = s.isolated.insert(name) }
    }

    public func isCut(from: String?, to: String) -> Bool {
        guard let from else { return false }
        return state.withLockedValue { s in
            if s.isolated.contains(from) || s.isolated.contains(to) { return true }
            guard let g = s.groups else { return false }
            return (g[from] ?? -1) != (g[to] ?? -1)
        }
    }

    /// For one message on a link: nil to drop it, else the delay in milliseconds.
    public func fate(from: String?, to: String) -> Int? {
        if isCut(from: from, to: to) { return nil }
        return state.withLockedValue { s in
            if s.lossPercent > 0 {
                let roll = Double(s.rng.next() % 1_000_000) / 10_000
                if roll < s.lossPercent { return nil }
            }
            guard let d = s.delayMs, d.upperBound > 0 else { return 0 }
            return d.lowerBound + Int(s.rng.next() % UInt64(d.upperBound - d.lowerBound + 1))
        }
    }
}
