import Foundation
import RaftNodeWire

/// The simulator's executor: one FIFO queue of jobs, run on the driver's thread only when
/// the driver says so. Every task of a simulated run (the engine, `submit`'s puts, `load`'s
/// clients) runs here, one job at a time, in the order they became ready: with the seed,
/// that order is the whole schedule, the same in every process.
final class SimulatedExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Locked<[UnownedJob]>([])

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLockedValue { $0.append(job) }
    }

    /// Runs jobs until none is ready (every task waits on simulated time or has ended).
    func runUntilIdle() {
        while true {
            let next = jobs.withLockedValue { q -> UnownedJob? in q.isEmpty ? nil : q.removeFirst() }
            guard let job = next else { return }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Simulated time: a queue of timed actions, taken in order of (time, then order of
/// scheduling). Only the driver's thread touches it.
final class SimulatedTimeline: @unchecked Sendable {
    /// Microseconds since the run began.
    private(set) var nowUs: Int64 = 0
    private var heap: [(at: Int64, seq: UInt64, action: () -> Void)] = []
    private var seq: UInt64 = 0

    func schedule(at: Int64, _ action: @escaping () -> Void) {
        seq += 1
        heap.append((max(at, nowUs), seq, action))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    func schedule(afterUs delay: Int64, _ action: @escaping () -> Void) { schedule(at: nowUs + max(0, delay), action) }

    private static func before(_ a: (at: Int64, seq: UInt64, action: () -> Void), _ b: (at: Int64, seq: UInt64, action: () -> Void)) -> Bool {
        a.at != b.at ? a.at < b.at : a.seq < b.seq
    }

    /// Takes the next action, moves the time to it and runs it; false when none is left.
    func step() -> Bool {
        guard !heap.isEmpty else { return false }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, Self.before(heap[l], heap[m]) { m = l }
                if r < heap.count, Self.before(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        nowUs = top.at
        top.action()
        return true
    }
}

/// The run's clock in the simulator: `sleep` is a timed action that resumes the task.
struct SimulatedClock: RunClock {
    let timeline: SimulatedTimeline
    let simulatedExecutor: SimulatedExecutor

    var nowMs: Int { Int(timeline.nowUs / 1000) }
    var unixMicros: Int64 { Timestamp.simulationEpochMicros + timeline.nowUs }
    var executor: (any TaskExecutor)? { simulatedExecutor }

    func sleep(ms: Int) async {
        let timeline = self.timeline
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            timeline.schedule(afterUs: Int64(max(0, ms)) * 1000) { c.resume() }
        }
    }
}

/// Runs `body` in simulated time on a thread of its own: its tasks' jobs, then the next
/// timed action, and so on until `body` returns. Nothing here sleeps.
enum SimulatedRun {
    struct Stalled: Error, CustomStringConvertible {
        var description: String { "the simulated run stalled: a task waits on nothing that will happen" }
    }

    static func run<T: Sendable>(
        executor: SimulatedExecutor, timeline: SimulatedTimeline, _ body: @escaping @Sendable () async -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (outer: CheckedContinuation<T, any Error>) in
            let thread = Thread {
                let result = Locked<T?>(nil)
                _ = Task(executorPreference: executor) {
                    let value = await body()
                    result.withLockedValue { $0 = value }
                }
                while true {
                    executor.runUntilIdle()
                    if let value = result.withLockedValue({ $0 }) {
                        outer.resume(returning: value)
                        return
                    }
                    guard timeline.step() else {
                        outer.resume(throwing: Stalled())
                        return
                    }
                }
            }
            thread.name = "simulated run"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }
}
