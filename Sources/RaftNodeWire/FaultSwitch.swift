#if RAFT_FAULTS
    import Foundation
#endif

/// Faults planted on purpose, for the proof that `harness explore` finds what breaks
/// (`make explore-proof`). They exist only in a build made with `-Xswiftc -DRAFT_FAULTS`
/// (a separate build folder); in every other build `active` is always empty and the checks
/// compile to nothing. In that build, the environment variable `RAFT_FAULT` names one.
/// Not a flag of raft-node: nothing in its `--help`, nothing a user can turn on by accident.
public enum FaultSwitch: String, Sendable, CaseIterable {
    /// A leader stops sending to a peer whose connection broke, until the leader restarts.
    case stuckPeerConnection = "stuck-peer-connection"
    /// A follower that started on existing data ignores every snapshot offer.
    case ignoreSnapshotAfterRestart = "ignore-snapshot-after-restart"
    /// Any node, follower and deposed leader included, answers `get` at once from its own
    /// state instead of through the log: the stale reads check 6 must catch (issue 11).
    case staleReads = "stale-reads"

    /// The fault this process runs with, if any.
    public static let active: FaultSwitch? = {
        #if RAFT_FAULTS
            return ProcessInfo.processInfo.environment["RAFT_FAULT"].flatMap(FaultSwitch.init(rawValue:))
        #else
            return nil
        #endif
    }()

    public static func isOn(_ fault: FaultSwitch) -> Bool { active == fault }
}
