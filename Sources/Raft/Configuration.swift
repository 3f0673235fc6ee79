/// Who is in the cluster: the voters, the learners (members that receive the log but do not
/// vote and are not counted in any majority), and how to reach each of them.
///
/// A configuration is data carried by `.config` log entries and takes effect on each node as
/// soon as the entry is in its log, committed or not (dissertation, chapter 4). Every change
/// is of a single server, so any majority of the old voters overlaps any majority of the new.
public struct Configuration: Sendable, Hashable, CustomStringConvertible {
    /// Voting members, sorted.
    public private(set) var voters: [NodeID]
    /// Non-voting members, sorted.
    public private(set) var learners: [NodeID]
    /// Learners that the leader promotes to voters once they have caught up (added by `add`,
    /// not by `addLearner`). Kept in the configuration so that a new leader carries on.
    public private(set) var promoting: [NodeID]
    /// Transport address of each member (a socket path or `tcp://host:port`); opaque here.
    public private(set) var addresses: [NodeID: String]

    public init(voters: [NodeID] = [], learners: [NodeID] = [], promoting: [NodeID] = [], addresses: [NodeID: String] = [:]) {
        self.voters = Array(Set(voters)).sorted()
        self.learners = Array(Set(learners).subtracting(voters)).sorted()
        self.promoting = Array(Set(promoting).intersection(self.learners)).sorted()
        self.addresses = addresses.filter { voters.contains($0.key) || learners.contains($0.key) }
    }

    public static let empty = Configuration()

    /// Voters and learners, sorted.
    public var members: [NodeID] { (voters + learners).sorted() }

    public var isEmpty: Bool { voters.isEmpty && learners.isEmpty }

    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }
    public func isLearner(_ id: NodeID) -> Bool { learners.contains(id) }
    public func isMember(_ id: NodeID) -> Bool { isVoter(id) || isLearner(id) }

    /// How many votes make a majority of the voters.
    public var quorum: Int { voters.count / 2 + 1 }

    public var description: String {
        var s = "voters=[\(voters.joined(separator: ","))]"
        if !learners.isEmpty { s += " learners=[\(learners.joined(separator: ","))]" }
        if !promoting.isEmpty { s += " promoting=[\(promoting.joined(separator: ","))]" }
        return s
    }

    /// This configuration after one single-server change, or why the change is refused.
    public func applying(_ change: ConfigurationChange) throws(ConfigurationError) -> Configuration {
        switch change {
        case let .addLearner(id, address, promote):
            guard !isMember(id) else { throw .alreadyMember(id) }
            var addresses = self.addresses
            addresses[id] = address
            return Configuration(
                voters: voters, learners: learners + [id],
                promoting: promote ? promoting + [id] : promoting, addresses: addresses)
        case let .promote(id):
            guard isLearner(id) else { throw isVoter(id) ? .alreadyVoter(id) : .notMember(id) }
            return Configuration(
                voters: voters + [id], learners: learners.filter { $0 != id },
                promoting: promoting.filter { $0 != id }, addresses: addresses)
        case let .remove(id):
            guard isMember(id) else { throw .notMember(id) }
            guard !(isVoter(id) && voters.count == 1) else { throw .lastVoter(id) }
            var addresses = self.addresses
            addresses[id] = nil
            return Configuration(
                voters: voters.filter { $0 != id }, learners: learners.filter { $0 != id },
                promoting: promoting.filter { $0 != id }, addresses: addresses)
        }
    }

    /// The number of voters that differ between two configurations (added plus removed).
    public func voterDistance(to other: Configuration) -> Int {
        Set(voters).symmetricDifference(other.voters).count
    }

    // MARK: Codec

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.write(UInt8(1))  // format version
        w.write(voters)
        w.write(learners)
        w.write(promoting)
        let members = self.members
        w.write(UInt32(members.count))
        for m in members {
            w.write(m)
            w.write(addresses[m] ?? "")
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        var r = ByteReader(bytes)
        try self.init(from: &r)
        try r.expectEnd("configuration")
    }

    public init(from r: inout ByteReader) throws(DecodingError) {
        let version = try r.readUInt8("configuration version")
        guard version == 1 else { throw DecodingError(offset: r.offset - 1, detail: "unknown configuration version \(version)") }
        let voters = try r.readStrings("voters")
        let learners = try r.readStrings("learners")
        let promoting = try r.readStrings("promoting")
        let n = Int(try r.readUInt32("address count"))
        var addresses: [NodeID: String] = [:]
        // Each address takes at least 8 bytes; a count the input cannot hold is damage.
        guard n <= r.remaining / 8 else {
            throw DecodingError(offset: r.offset - 4, detail: "address count \(n) exceeds the \(r.remaining) bytes left")
        }
        for _ in 0..<n {
            let id = try r.readString("member")
            let address = try r.readString("address")
            if !address.isEmpty { addresses[id] = address }
        }
        self.init(voters: voters, learners: learners, promoting: promoting, addresses: addresses)
    }
}

/// A single-server change of configuration: goraft's AddPeer and RemovePeer, with learners.
public enum ConfigurationChange: Sendable, Hashable, CustomStringConvertible {
    /// Adds a non-voting member. With `promote`, the leader makes it a voter once it has caught up.
    case addLearner(NodeID, address: String, promote: Bool)
    /// Makes a learner a voter.
    case promote(NodeID)
    /// Removes a voter or a learner (goraft's RemovePeer).
    case remove(NodeID)

    public var description: String {
        switch self {
        case let .addLearner(id, _, promote): promote ? "add \(id)" : "add-learner \(id)"
        case let .promote(id): "promote \(id)"
        case let .remove(id): "remove \(id)"
        }
    }
}

public enum ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    case alreadyMember(NodeID)
    case alreadyVoter(NodeID)
    case notMember(NodeID)
    case lastVoter(NodeID)

    public var description: String {
        switch self {
        case let .alreadyMember(id): "\(id) is already a member"
        case let .alreadyVoter(id): "\(id) is already a voter"
        case let .notMember(id): "\(id) is not a member"
        case let .lastVoter(id): "\(id) is the last voter"
        }
    }
}
