/// Majority arithmetic, apart from the protocol.
public enum Quorum {
    /// The highest index that a majority of `voters` have: with `match` giving each voter's
    /// highest replicated index (absent counts as 0). 0 for no voters.
    public static func committedIndex(voters: [NodeID], match: (NodeID) -> LogIndex) -> LogIndex {
        guard !voters.isEmpty else { return 0 }
        let sorted = voters.map(match).sorted(by: >)
        return sorted[voters.count / 2]
    }

    /// Whether the `granted` voters form a majority of `voters`; only voters count.
    public static func isMajority(_ granted: some Collection<NodeID>, of voters: [NodeID]) -> Bool {
        guard !voters.isEmpty else { return false }
        let count = Set(granted).intersection(voters).count
        return count >= voters.count / 2 + 1
    }

    /// Whether the `rejected` voters make a majority impossible.
    public static func isLost(_ rejected: some Collection<NodeID>, of voters: [NodeID]) -> Bool {
        let count = Set(rejected).intersection(voters).count
        return voters.count - count < voters.count / 2 + 1
    }
}
