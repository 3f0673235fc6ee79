import Raft
import RaftNodeMachine
import RaftStorage

extension NodeStorage {
    /// Carries out `outputs` in the order `CarryOutPlan` gives: each `.persist` is written
    /// here, and one sync makes a run of them durable before the next output that depends on
    /// them goes to `perform` (a leader's AppendEntries may go before it). Returns the storage
    /// error that stopped it (the rest are not carried out), or nil. Every write is durable
    /// when it returns nil.
    public func carryOut(_ outputs: [NodeOutput], _ perform: (NodeOutput) -> Void) -> (any Error)? {
        carryOut(steps: CarryOutPlan.steps(outputs), perform)
    }

    /// Carries out the steps of a plan (`CarryOutPlan.steps`), as `carryOut(_:_:)` does.
    public func carryOut(steps: [CarryOutPlan.Step], _ perform: (NodeOutput) -> Void) -> (any Error)? {
        do {
            for step in steps {
                switch step {
                case let .persist(action): try persist(action)
                case .sync: try sync()
                case let .perform(output): perform(output)
                }
            }
            return nil
        } catch {
            return error
        }
    }
}
