import Raft

/// The order in which a host carries out a batch of a machine's outputs, with its syncs: the
/// ordering contract of `NodeOutput` (and the core's `Action`) as steps, so that the process
/// runtime and the simulator of `harness run --sim` follow the same rule.
///
/// A `.persist` is written where it stands; before an output that depends on it, one sync
/// makes every write before it durable; a batch that ends with writes ends with a sync.
/// The one output that need not wait is a leader's AppendEntries while only appends of
/// entries wait, and its commit index is below the first of them: it promises nothing of the
/// leader's disk and reveals no commit that counted an unsynced entry (in a one-voter
/// configuration the leader commits its own entries in the step that appends them: an
/// AppendEntries then to a member being added waits). So the followers write the entries
/// while the leader syncs them (the Raft dissertation, 10.2.1); the host still finishes the
/// sync before the machine's next input.
public enum CarryOutPlan {
    public enum Step: Sendable {
        /// Write this (durable only after the next `.sync`).
        case persist(Action)
        /// Make every write so far durable.
        case sync
        case perform(NodeOutput)
    }

    public static func steps(_ outputs: [NodeOutput]) -> [Step] {
        var steps: [Step] = []
        steps.reserveCapacity(outputs.count + 2)
        // What waits for the next sync: the first entry appended, and whether anything but
        // appends does.
        var firstUnsynced: LogIndex?
        var otherUnsynced = false
        for output in outputs {
            if case let .persist(action) = output {
                if case let .appendLog(entries) = action, let first = entries.first {
                    firstUnsynced = min(firstUnsynced ?? first.index, first.index)
                } else {
                    otherUnsynced = true
                }
                steps.append(.persist(action))
                continue
            }
            if firstUnsynced != nil || otherUnsynced {
                if !otherUnsynced, let first = firstUnsynced, case let .send(m) = output, case let .appendEntries(ae) = m.body, ae.commitIndex < first {
                    steps.append(.perform(output))
                    continue
                }
                steps.append(.sync)
                firstUnsynced = nil
                otherUnsynced = false
            }
            steps.append(.perform(output))
        }
        if firstUnsynced != nil || otherUnsynced { steps.append(.sync) }
        return steps
    }
}
