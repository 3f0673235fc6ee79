// The seeded simulator: RaftCore instances over a simulated network and simulated disks,
// in simulated time. One seed decides everything: delays, drops, duplicates, partitions,
// crashes (between any two actions of a step), restarts, membership changes and client
// load. Nothing sleeps, so thousands of schedules run in seconds, and a failing seed replays
// exactly (`swift run raft-sim --seed N`).
//
//   EventQueue.swift      a min-heap of timed events, ties broken by insertion order
//   SimulatedNode.swift   a node's disk (hard state, log, snapshots) and key-value state
//   Invariants.swift      the safety checks, run after every step
//   Simulation.swift      the engine: network, action execution, faults, client load
//   SimulationOptions.swift  what a schedule does, derived from its seed

/// A min-heap of events by time; events at the same time come out in the order they went in.
struct EventQueue<Event> {
    private var heap: [(time: Int, seq: UInt64, event: Event)] = []
    private var seq: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func push(_ event: Event, at time: Int) {
        seq += 1
        heap.append((time, seq, event))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (time: Int, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].time < heap[b].time || (heap[a].time == heap[b].time && heap[a].seq < heap[b].seq)
    }
}
