import Raft
import Testing

/// The pieces apart from the protocol: codec, configuration rules, quorum arithmetic, the log view.
@Suite("Codec and Configuration")
struct CodecTests {
    @Test func configurationEncodeDecodeRoundTrip() throws {
        let conf = Configuration(
            voters: ["n3", "n1", "n2"], learners: ["n5", "n4"], promoting: ["n4"],
            addresses: ["n1": "/tmp/n1.sock", "n2": "tcp://10.0.0.2:7000", "n4": "tcp://h:1"])
        let decoded = try Configuration(decoding: conf.encoded())
        #expect(decoded == conf)
        #expect(decoded.voters == ["n1", "n2", "n3"])
        #expect(decoded.promoting == ["n4"])
        #expect(decoded.addresses["n2"] == "tcp://10.0.0.2:7000")
    }

    @Test func configurationEntryCarriesItsConfiguration() {
        let conf = Configuration(voters: ["a", "b"])
        #expect(Entry(index: 1, term: 1, type: .config, payload: conf.encoded()).configuration == conf)
        #expect(Entry(index: 1, term: 1, type: .command, payload: conf.encoded()).configuration == nil)
    }

    @Test func byteReaderOnTruncatedInputThrowsWithOffset() {
        var w = ByteWriter()
        w.write(UInt32(7))
        w.write(UInt64(9))
        var r = ByteReader(Array(w.bytes.prefix(9)))
        #expect((try? r.readUInt32()) == 7)
        #expect(throws: DecodingError.self) { try r.readUInt64() }
        do {
            _ = try r.readUInt64("term")
        } catch {
            #expect(error.offset == 4)
            #expect(error.detail.contains("term"))
        }
    }

    @Test func truncatedConfigurationThrowsWithOffsetInsideInput() {
        let bytes = Configuration(voters: ["n1", "n2"]).encoded()
        for n in 0..<bytes.count {
            do {
                _ = try Configuration(decoding: Array(bytes.prefix(n)))
                Issue.record("decoded a prefix of \(n) of \(bytes.count) bytes")
            } catch {
                #expect(error.offset <= n, "prefix \(n)")
            }
        }
    }

    @Test func trailingBytesAfterConfigurationAreRefused() {
        let bytes = Configuration(voters: ["n1"]).encoded()
        #expect(throws: DecodingError.self) { try Configuration(decoding: bytes + [0]) }
    }

    @Test func blobLengthBeyondInputThrowsInsteadOfReading() {
        var w = ByteWriter()
        w.write(UInt32(1_000_000))
        w.write(UInt8(1))
        var r = ByteReader(w.bytes)
        #expect(throws: DecodingError.self) { try r.readBlob() }
    }

    @Test func singleServerChangesProduceExpectedConfigurations() throws {
        let conf = Configuration(voters: ["n1", "n2", "n3"])
        let added = try conf.applying(.addLearner("n4", address: "a4", promote: true))
        #expect(added.learners == ["n4"] && added.promoting == ["n4"] && added.addresses["n4"] == "a4")
        let promoted = try added.applying(.promote("n4"))
        #expect(promoted.voters == ["n1", "n2", "n3", "n4"] && promoted.learners.isEmpty && promoted.promoting.isEmpty)
        let removed = try promoted.applying(.remove("n1"))
        #expect(removed.voters == ["n2", "n3", "n4"])
        #expect(conf.voterDistance(to: removed) == 2)
        #expect(conf.voterDistance(to: added) == 0)
    }
}

@Suite("Quorum")
struct QuorumTests {
    @Test func committedIndexIsWhatAMajorityHolds() {
        let match: [NodeID: LogIndex] = ["a": 5, "b": 3, "c": 1, "d": 4, "e": 2]
        #expect(Quorum.committedIndex(voters: ["a", "b", "c"]) { match[$0] ?? 0 } == 3)
        #expect(Quorum.committedIndex(voters: ["a", "b", "c", "d"]) { match[$0] ?? 0 } == 3)
        #expect(Quorum.committedIndex(voters: ["a", "b", "c", "d", "e"]) { match[$0] ?? 0 } == 3)
        #expect(Quorum.committedIndex(voters: ["a"]) { match[$0] ?? 0 } == 5)
        #expect(Quorum.committedIndex(voters: ["a", "x"]) { match[$0] ?? 0 } == 0)
        #expect(Quorum.committedIndex(voters: []) { match[$0] ?? 0 } == 0)
    }

    @Test func majorityCountsOnlyVoters() {
        let voters = ["a", "b", "c", "d"]
        #expect(!Quorum.isMajority(["a", "b"], of: voters))
        #expect(Quorum.isMajority(["a", "b", "c"], of: voters))
        #expect(!Quorum.isMajority(["a", "b", "learner"], of: voters))
        #expect(!Quorum.isMajority(["a"], of: []))
        #expect(Quorum.isMajority(["a"], of: ["a"]))
    }

    @Test func electionIsLostOnceMajorityIsImpossible() {
        let voters = ["a", "b", "c", "d", "e"]
        #expect(!Quorum.isLost(["a", "b"], of: voters))
        #expect(Quorum.isLost(["a", "b", "c"], of: voters))
        #expect(Quorum.isLost(["a", "b"], of: ["a", "b", "c", "d"]))
        #expect(!Quorum.isLost(["x", "y", "z"], of: voters))
    }
}

@Suite("RaftLog")
struct RaftLogTests {
    private let log = RaftLog(entries: entries(terms: [1, 1, 2, 2, 2, 3]))

    @Test func termAtIndex() {
        #expect(log.term(at: 0) == 0)
        #expect(log.term(at: 3) == 2)
        #expect(log.term(at: 6) == 3)
        #expect(log.term(at: 7) == nil)
        #expect(log.lastIndex == 6 && log.lastTerm == 3 && log.firstIndex == 1)
    }

    @Test func entriesFromIndexAreLimitedByCountAndBytes() {
        #expect(log.entries(from: 2, maxCount: 3).map(\.index) == [2, 3, 4])
        #expect(log.entries(from: 5, maxCount: 10).map(\.index) == [5, 6])
        #expect(log.entries(from: 7, maxCount: 10).isEmpty)
        // Each payload is 3 bytes ("1@1"); at least one entry goes even over the limit.
        #expect(log.entries(from: 1, maxCount: 10, maxBytes: 7).map(\.index) == [1, 2])
        #expect(log.entries(from: 1, maxCount: 10, maxBytes: 1).map(\.index) == [1])
    }

    @Test func truncateRemovesSuffix() {
        var l = log
        l.truncate(from: 4)
        #expect(l.lastIndex == 3 && l.lastTerm == 2)
        l.truncate(from: 10)
        #expect(l.lastIndex == 3)
    }

    @Test func compactKeepsEntriesAfterThePoint() {
        var l = log
        l.compact(through: 4, term: 2)
        #expect(l.prevIndex == 4 && l.prevTerm == 2 && l.firstIndex == 5)
        #expect(l.term(at: 4) == 2)
        #expect(l.term(at: 3) == nil)
        #expect(l.entry(at: 4) == nil)
        #expect(l.entries.map(\.index) == [5, 6])
        l.compact(through: 9, term: 4)
        #expect(l.entries.isEmpty && l.lastIndex == 9 && l.lastTerm == 4)
    }

    @Test func firstIndexOfTermAndLastIndexOfTerm() {
        #expect(log.firstIndexOfTerm(at: 5) == 3)
        #expect(log.firstIndexOfTerm(at: 2) == 1)
        #expect(log.lastIndex(ofTerm: 2) == 5)
        #expect(log.lastIndex(ofTerm: 4) == nil)
        #expect(RaftLog(entries: entries(terms: [1, 3])).lastIndex(ofTerm: 2) == nil)
    }

    @Test func isUpToDateComparesLastTermThenLastIndex() {
        #expect(log.isUpToDate(lastIndex: 1, lastTerm: 4))
        #expect(!log.isUpToDate(lastIndex: 100, lastTerm: 2))
        #expect(log.isUpToDate(lastIndex: 6, lastTerm: 3))
        #expect(!log.isUpToDate(lastIndex: 5, lastTerm: 3))
    }
}
