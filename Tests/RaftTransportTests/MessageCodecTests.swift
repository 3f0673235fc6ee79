import NIOCore
import Raft
@testable import RaftTransport
import Testing

/// One message of every body, with edge values.
let sampleMessages: [Message] = {
    let config = Configuration(
        voters: ["n1", "n2", "n3"], learners: ["n4"], promoting: ["n4"],
        addresses: ["n1": "/tmp/r/n1.sock", "n2": "/tmp/r/n2.sock", "n3": "tcp://10.0.0.3:7000", "n4": "/tmp/r/n4.sock"])
    let entries = (1...300).map { (i: Int) -> Entry in
        let index = UInt64(i)
        let term = UInt64(i / 100 + 1)
        switch i {
        case 1: return Entry(index: index, term: term, type: .noop)
        case 2: return Entry(index: index, term: term, type: .config, payload: config.encoded())
        default: return Entry(index: index, term: term, type: .command, payload: Array("put k\(i) v\(i)".utf8))
        }
    }
    let bodies: [Message.Body] = [
        .appendEntries(AppendEntries(prevLogIndex: 0, prevLogTerm: 0, entries: [], commitIndex: 0)),
        .appendEntries(AppendEntries(prevLogIndex: 41, prevLogTerm: 3, entries: entries, commitIndex: 40)),
        .appendEntriesResponse(AppendEntriesResponse(success: true, index: 12, lastIndex: 12)),
        .appendEntriesResponse(AppendEntriesResponse(success: false, index: 9, hintIndex: 5, hintTerm: 2, lastIndex: .max)),
        .heartbeat(commitIndex: 77),
        .heartbeatResponse,
        .readRound(commitIndex: 77, round: 1),
        .readRound(commitIndex: 0, round: .max),
        .readRoundResponse(round: 12_345),
        .requestVote(RequestVote(lastLogIndex: 10, lastLogTerm: 4, preVote: true)),
        .requestVote(RequestVote(lastLogIndex: 0, lastLogTerm: 0, preVote: false)),
        .requestVoteResponse(granted: true, preVote: false),
        .requestVoteResponse(granted: false, preVote: true),
        .snapshotRequest(SnapshotMetadata(index: 1000, term: 7, configuration: config, size: 1 << 33)),
        .snapshotRequest(SnapshotMetadata(index: 1, term: 1, configuration: .empty, size: 0)),
        .snapshotResponse(accepted: true, index: 1000, lastIndex: 3),
        .snapshotResponse(accepted: false, index: 1000, lastIndex: 1200),
        .snapshotRecoveryRequest(
            SnapshotRecoveryRequest(index: 1000, snapshotTerm: 7, offset: 65536, data: (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31) }, done: false)),
        .snapshotRecoveryRequest(SnapshotRecoveryRequest(index: 1000, snapshotTerm: 7, offset: 131072, data: [], done: true)),
        .snapshotRecoveryResponse(SnapshotRecoveryResponse(index: 1000, snapshotTerm: 7, nextOffset: 131072, installed: false, success: true)),
        .snapshotRecoveryResponse(SnapshotRecoveryResponse(index: 1000, snapshotTerm: 7, nextOffset: 131072, installed: false, success: true, installing: true)),
        .snapshotRecoveryResponse(SnapshotRecoveryResponse(index: 1000, snapshotTerm: 7, nextOffset: 0, installed: true, success: false)),
        .removed(configIndex: 55),
    ]
    return bodies.enumerated().map { i, body in
        Message(from: "n\(i % 3 + 1)", to: i % 2 == 0 ? "n-é-2" : "n3", term: UInt64(i) * 1_000_003, body: body)
    }
}()

/// A small deterministic generator for the garbage tests.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

@Suite struct MessageCodecTests {
    @Test(arguments: sampleMessages)
    func roundTripsEveryBody(_ message: Message) throws {
        let bytes = message.encoded()
        #expect(try Message(decoding: bytes) == message)
        #expect(message.encoded() == bytes, "encoding is deterministic")
    }

    @Test func everyBodyIsCovered() {
        var tags = Set<UInt8>()
        for m in sampleMessages {
            let bytes = m.encoded()
            var r = ByteReader(bytes)
            _ = try? r.readString()
            _ = try? r.readString()
            _ = try? r.readUInt64()
            if let tag = try? r.readUInt8() { tags.insert(tag) }
        }
        #expect(tags == Set(1...13))
    }

    @Test func everyTruncationThrows() {
        for message in sampleMessages where message.encoded().count < 20_000 {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: DecodingError.self) { try Message(decoding: Array(bytes[..<cut])) }
            }
        }
    }

    @Test func trailingBytesThrow() {
        let bytes = sampleMessages[4].encoded() + [0]
        #expect(throws: DecodingError.self) { try Message(decoding: bytes) }
    }

    @Test func randomBytesNeverTrap() {
        var rng = SplitMix64(state: 42)
        for round in 0..<20_000 {
            let bytes = rng.bytes(Int(rng.next() % 200))
            _ = try? Message(decoding: bytes)
            // Mutations of valid messages reach deeper into the decoder.
            var valid = sampleMessages[round % sampleMessages.count].encoded()
            if valid.count > 5000 { continue }
            for _ in 0..<(1 + rng.next() % 4) {
                valid[Int(rng.next() % UInt64(valid.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            _ = try? Message(decoding: valid)
        }
    }

    /// A header claiming 4 billion entries, or a 4 GiB payload, is refused by a bounds check,
    /// not attempted.
    @Test func hugeLengthFieldsThrowWithoutAllocating() throws {
        var w = ByteWriter()
        w.write("n1")
        w.write("n2")
        w.write(UInt64(1))
        w.write(UInt8(1))  // AppendEntries
        w.write(UInt64(0))
        w.write(UInt64(0))
        w.write(UInt64(0))
        w.write(UInt32.max)  // entry count
        let error = #expect(throws: DecodingError.self) { try Message(decoding: w.bytes + [UInt8](repeating: 0, count: 100)) }
        #expect(error?.detail.contains("entry count") == true)

        var chunk = ByteWriter()
        chunk.write("n1")
        chunk.write("n2")
        chunk.write(UInt64(1))
        chunk.write(UInt8(9))  // SnapshotRecoveryRequest
        chunk.write(UInt64(0))
        chunk.write(UInt64(0))
        chunk.write(UInt64(0))
        chunk.write(false)
        chunk.write(UInt32.max)  // data length
        #expect(throws: DecodingError.self) { try Message(decoding: chunk.bytes + [1, 2, 3]) }

        var name = ByteWriter()
        name.write(UInt32.max)  // sender length
        #expect(throws: DecodingError.self) { try Message(decoding: name.bytes + [0x41]) }

        var config = ByteWriter()
        config.write("n1")
        config.write("n2")
        config.write(UInt64(1))
        config.write(UInt8(7))  // SnapshotRequest
        config.write(UInt64(0))
        config.write(UInt64(0))
        config.write(UInt64(0))
        config.write(UInt8(1))  // configuration version
        config.write(UInt32.max)  // voter count
        #expect(throws: DecodingError.self) { try Message(decoding: config.bytes + [0, 0, 0, 0]) }
    }

    @Test func unknownTagsAndEntryTypesThrow() {
        var w = ByteWriter()
        w.write("a")
        w.write("b")
        w.write(UInt64(1))
        w.write(UInt8(200))
        #expect(throws: DecodingError.self) { try Message(decoding: w.bytes) }

        let append = Message(
            from: "a", to: "b", term: 1,
            body: .appendEntries(AppendEntries(prevLogIndex: 0, prevLogTerm: 0, entries: [Entry(index: 1, term: 1, type: .noop)], commitIndex: 0)))
        var bytes = append.encoded()
        // The entry type byte sits 4 bytes (empty payload's length) before the end.
        bytes[bytes.count - 5] = 9
        #expect(throws: DecodingError.self) { try Message(decoding: bytes) }
        // A bool that is neither 0 nor 1.
        var vote = Message(from: "a", to: "b", term: 1, body: .requestVoteResponse(granted: true, preVote: false)).encoded()
        vote[vote.count - 1] = 2
        #expect(throws: DecodingError.self) { try Message(decoding: vote) }
    }
}

@Suite struct FrameTests {
    func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    @Test func parsesWholeFramesAndWaitsForPartialOnes() throws {
        let message = sampleMessages[1]
        let frame = Frame.encode(.message, payload: message.encoded(), allocator: ByteBufferAllocator())
        let all = Array(frame.readableBytesView) + Array(frame.readableBytesView)
        let parser = FrameParser(limit: 1 << 20)
        // Fed one byte at a time, nothing comes out until a frame is whole.
        var stream = ByteBuffer()
        var out: [Message] = []
        for byte in all {
            stream.writeInteger(byte)
            while let (kind, payload) = try parser.next(from: &stream) {
                #expect(kind == .message)
                out.append(try Message(decoding: Array(payload.readableBytesView)))
            }
        }
        #expect(out == [message, message])
        #expect(stream.readableBytes == 0)
    }

    @Test func oversizeLengthIsRefusedFromItsFourBytes() {
        let parser = FrameParser(limit: 1024)
        var b = buffer([0, 0, 4, 1])  // 1025, and nothing else yet
        #expect(throws: FrameError.self) { try parser.next(from: &b) }
        var huge = buffer([0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: FrameError.self) { try parser.next(from: &huge) }
        var atLimit = buffer([0, 0, 4, 0])
        #expect(throws: Never.self) { _ = try parser.next(from: &atLimit) }
    }

    @Test func badVersionKindAndTinyLengthAreRefused() {
        let parser = FrameParser(limit: 1024)
        var version = buffer([0, 0, 0, 10, 9])
        #expect(throws: FrameError.self) { try parser.next(from: &version) }
        var kind = buffer([0, 0, 0, 2, Frame.version, 77])
        #expect(throws: FrameError.self) { try parser.next(from: &kind) }
        var tiny = buffer([0, 0, 0, 1, Frame.version])
        #expect(throws: FrameError.self) { try parser.next(from: &tiny) }
    }

    @Test func helloRoundTripsAndChecksMagicAndVersion() throws {
        let hello = Hello(clusterID: "c-1", sender: "n1", receiver: "n2", senderAddress: "/tmp/n1.peer")
        #expect(try Hello(decoding: hello.encoded()) == hello)
        var bad = hello.encoded()
        bad[0] = 0
        #expect(throws: DecodingError.self) { try Hello(decoding: bad) }
        var version = hello.encoded()
        version[5] = 1  // a hello of version 1 (no sender address) is refused, not misread
        #expect(throws: DecodingError.self) { try Hello(decoding: version) }
        for cut in 0..<hello.encoded().count {
            #expect(throws: DecodingError.self) { try Hello(decoding: Array(hello.encoded()[..<cut])) }
        }
    }
}

@Suite struct PeerAddressTests {
    @Test func parsesPathsAndTCP() throws {
        #expect(try PeerAddress(parsing: "/tmp/x/n1.sock") == .unix(path: "/tmp/x/n1.sock"))
        #expect(try PeerAddress(parsing: "tcp://127.0.0.1:7000") == .tcp(host: "127.0.0.1", port: 7000))
        #expect(try PeerAddress(parsing: "tcp://[::1]:7000") == .tcp(host: "::1", port: 7000))
        #expect(try PeerAddress(parsing: "tcp://[::1]:7000").description == "tcp://[::1]:7000")
        #expect(try PeerAddress(parsing: "tcp://node-a.example:1") == .tcp(host: "node-a.example", port: 1))
        for bad in ["", "tcp://", "tcp://host", "tcp://:80", "tcp://h:99999", "tcp://h:x", "udp://h:1", "tcp://[::1]7000"] {
            #expect(throws: PeerTransportError.self, "\(bad)") { try PeerAddress(parsing: bad) }
        }
    }

    @Test func socketPathOver103BytesIsAClearError() {
        let path = "/tmp/" + String(repeating: "a", count: 99)  // 104 bytes
        #expect(throws: PeerTransportError.socketPathTooLong(path, bytes: 104)) { try PeerAddress(parsing: path) }
        let fits = "/tmp/" + String(repeating: "a", count: 98)
        #expect((try? PeerAddress(parsing: fits)) == .unix(path: fits))
    }
}
