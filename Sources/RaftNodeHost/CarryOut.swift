import Raft
import RaftNodeMachine
import RaftStorage

extension NodeStorage {
    /// Carries out `outputs` in order under the machine's contract: each `.persist` is
    /// written here, and one sync makes a run of them durable before the next output that
    /// is not one goes to `perform`. Returns the storage error that stopped it (the rest
    /// are not carried out), or nil.
    public func carryOut(_ outputs: [NodeOutput], _ perform: (NodeOutput) -> Void) -> (any Error)? {
        var unsynced = false
        do {
            for output in outputs {
                if case let .persist(action) = output {
                    try persist(action)
                    unsynced = true
                    continue
                }
                if unsynced {
                    try sync()
                    unsynced = false
                }
                perform(output)
            }
            if unsynced { try sync() }
            return nil
        } catch {
            return error
        }
    }
}
