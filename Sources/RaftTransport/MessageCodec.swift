import Raft

// The binary form of a `Message` on the wire, in the `ByteWriter` encoding of the Raft module
// (big-endian integers, u32-length-prefixed strings and blobs):
//
//   from string, to string, term u64, body tag u8, then the body:
//   1 AppendEntries             prevLogIndex u64, prevLogTerm u64, commitIndex u64,
//                               entry count u32, then each entry:
//                               index u64, term u64, type u8, payload blob
//   2 AppendEntriesResponse     success u8, index u64, hintIndex u64, hintTerm u64, lastIndex u64
//   3 Heartbeat                 commitIndex u64
//   4 HeartbeatResponse         (nothing)
//   5 RequestVote               lastLogIndex u64, lastLogTerm u64, preVote u8
//   6 RequestVoteResponse       granted u8, preVote u8
//   7 SnapshotRequest           index u64, term u64, size u64, Configuration blob (its own codec)
//   8 SnapshotResponse          accepted u8, index u64, lastIndex u64
//   9 SnapshotRecoveryRequest   index u64, snapshotTerm u64, offset u64, done u8, data blob
//   10 SnapshotRecoveryResponse index u64, snapshotTerm u64, nextOffset u64, installed u8, success u8,
//                               installing u8
//   11 Removed                  configIndex u64
//
// The layout has no version of its own: the frame that carries it does (`Frame.version`).
// The same message always gives the same bytes. Decoding checks every length against the
// bytes actually present before it allocates, so no input, however hostile, traps or makes
// a large allocation: it throws `DecodingError`.

extension Message {
    /// The message's wire form; deterministic.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + body.encodedSizeHint)
        encode(into: &w)
        return w.bytes
    }

    /// Appends the message's wire form to `w`.
    public func encode(into w: inout ByteWriter) {
        w.write(from)
        w.write(to)
        w.write(term)
        switch body {
        case let .appendEntries(a):
            w.write(BodyTag.appendEntries.rawValue)
            w.write(a.prevLogIndex)
            w.write(a.prevLogTerm)
            w.write(a.commitIndex)
            w.write(UInt32(a.entries.count))
            for e in a.entries {
                w.write(e.index)
                w.write(e.term)
                w.write(e.type.rawValue)
                w.writeBlob(e.payload)
            }
        case let .appendEntriesResponse(r):
            w.write(BodyTag.appendEntriesResponse.rawValue)
            w.write(r.success)
            w.write(r.index)
            w.write(r.hintIndex)
            w.write(r.hintTerm)
            w.write(r.lastIndex)
        case let .heartbeat(commitIndex):
            w.write(BodyTag.heartbeat.rawValue)
            w.write(commitIndex)
        case .heartbeatResponse:
            w.write(BodyTag.heartbeatResponse.rawValue)
        case let .readRound(commitIndex, round):
            w.write(BodyTag.readRound.rawValue)
            w.write(commitIndex)
            w.write(round)
        case let .readRoundResponse(round):
            w.write(BodyTag.readRoundResponse.rawValue)
            w.write(round)
        case let .requestVote(v):
            w.write(BodyTag.requestVote.rawValue)
            w.write(v.lastLogIndex)
            w.write(v.lastLogTerm)
            w.write(v.preVote)
        case let .requestVoteResponse(granted, preVote):
            w.write(BodyTag.requestVoteResponse.rawValue)
            w.write(granted)
            w.write(preVote)
        case let .snapshotRequest(m):
            w.write(BodyTag.snapshotRequest.rawValue)
            w.write(m.index)
            w.write(m.term)
            w.write(m.size)
            w.writeBlob(m.configuration.encoded())
        case let .snapshotResponse(accepted, index, lastIndex):
            w.write(BodyTag.snapshotResponse.rawValue)
            w.write(accepted)
            w.write(index)
            w.write(lastIndex)
        case let .snapshotRecoveryRequest(c):
            w.write(BodyTag.snapshotRecoveryRequest.rawValue)
            w.write(c.index)
            w.write(c.snapshotTerm)
            w.write(c.offset)
            w.write(c.done)
            w.writeBlob(c.data)
        case let .snapshotRecoveryResponse(r):
            w.write(BodyTag.snapshotRecoveryResponse.rawValue)
            w.write(r.index)
            w.write(r.snapshotTerm)
            w.write(r.nextOffset)
            w.write(r.installed)
            w.write(r.success)
            w.write(r.installing)
        case let .removed(configIndex):
            w.write(BodyTag.removed.rawValue)
            w.write(configIndex)
        }
    }

    /// Decodes exactly one message; trailing bytes are an error.
    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        try self.init(decoding: bytes[...])
    }

    /// Decodes exactly one message; trailing bytes are an error.
    public init(decoding bytes: ArraySlice<UInt8>) throws(DecodingError) {
        var r = ByteReader(bytes)
        try self.init(from: &r)
        try r.expectEnd("message")
    }

    /// Decodes one message from `r`, leaving `r` after it.
    public init(from r: inout ByteReader) throws(DecodingError) {
        let from = try r.readString("sender")
        let to = try r.readString("receiver")
        let term = try r.readUInt64("term")
        let tagOffset = r.offset
        let rawTag = try r.readUInt8("body tag")
        guard let tag = BodyTag(rawValue: rawTag) else {
            throw DecodingError(offset: tagOffset, detail: "unknown message body tag \(rawTag)")
        }
        let body: Body
        switch tag {
        case .appendEntries:
            let prevLogIndex = try r.readUInt64("prevLogIndex")
            let prevLogTerm = try r.readUInt64("prevLogTerm")
            let commitIndex = try r.readUInt64("commitIndex")
            let countOffset = r.offset
            let count = Int(try r.readUInt32("entry count"))
            // Each entry takes at least `minimumEntrySize` bytes: a count the input cannot hold
            // is refused before anything is allocated for it.
            guard count <= r.remaining / Self.minimumEntrySize else {
                throw DecodingError(
                    offset: countOffset,
                    detail: "entry count \(count) needs at least \(count * Self.minimumEntrySize) bytes, have \(r.remaining)")
            }
            var entries: [Entry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let index = try r.readUInt64("entry index")
                let entryTerm = try r.readUInt64("entry term")
                let typeOffset = r.offset
                let rawType = try r.readUInt8("entry type")
                guard let type = EntryType(rawValue: rawType) else {
                    throw DecodingError(offset: typeOffset, detail: "unknown entry type \(rawType)")
                }
                let payload = Array(try r.readBlob("entry payload"))
                entries.append(Entry(index: index, term: entryTerm, type: type, payload: payload))
            }
            body = .appendEntries(
                AppendEntries(prevLogIndex: prevLogIndex, prevLogTerm: prevLogTerm, entries: entries, commitIndex: commitIndex))
        case .appendEntriesResponse:
            let success = try r.readBool("success")
            let index = try r.readUInt64("index")
            let hintIndex = try r.readUInt64("hintIndex")
            let hintTerm = try r.readUInt64("hintTerm")
            let lastIndex = try r.readUInt64("lastIndex")
            body = .appendEntriesResponse(
                AppendEntriesResponse(success: success, index: index, hintIndex: hintIndex, hintTerm: hintTerm, lastIndex: lastIndex))
        case .heartbeat:
            body = .heartbeat(commitIndex: try r.readUInt64("commitIndex"))
        case .heartbeatResponse:
            body = .heartbeatResponse
        case .readRound:
            let commitIndex = try r.readUInt64("commitIndex")
            body = .readRound(commitIndex: commitIndex, round: try r.readUInt64("round"))
        case .readRoundResponse:
            body = .readRoundResponse(round: try r.readUInt64("round"))
        case .requestVote:
            let lastLogIndex = try r.readUInt64("lastLogIndex")
            let lastLogTerm = try r.readUInt64("lastLogTerm")
            let preVote = try r.readBool("preVote")
            body = .requestVote(RequestVote(lastLogIndex: lastLogIndex, lastLogTerm: lastLogTerm, preVote: preVote))
        case .requestVoteResponse:
            let granted = try r.readBool("granted")
            let preVote = try r.readBool("preVote")
            body = .requestVoteResponse(granted: granted, preVote: preVote)
        case .snapshotRequest:
            let index = try r.readUInt64("snapshot index")
            let snapshotTerm = try r.readUInt64("snapshot term")
            let size = try r.readUInt64("snapshot size")
            // Length-prefixed, so that a cut inside the configuration is always noticed
            // (`Configuration(from:)` reads an address list that stops short as shorter).
            let configuration = try Configuration(decoding: Array(try r.readBlob("configuration")))
            body = .snapshotRequest(SnapshotMetadata(index: index, term: snapshotTerm, configuration: configuration, size: size))
        case .snapshotResponse:
            let accepted = try r.readBool("accepted")
            let index = try r.readUInt64("index")
            let lastIndex = try r.readUInt64("lastIndex")
            body = .snapshotResponse(accepted: accepted, index: index, lastIndex: lastIndex)
        case .snapshotRecoveryRequest:
            let index = try r.readUInt64("snapshot index")
            let snapshotTerm = try r.readUInt64("snapshot term")
            let offset = try r.readUInt64("chunk offset")
            let done = try r.readBool("done")
            let data = Array(try r.readBlob("chunk data"))
            body = .snapshotRecoveryRequest(
                SnapshotRecoveryRequest(index: index, snapshotTerm: snapshotTerm, offset: offset, data: data, done: done))
        case .snapshotRecoveryResponse:
            let index = try r.readUInt64("snapshot index")
            let snapshotTerm = try r.readUInt64("snapshot term")
            let nextOffset = try r.readUInt64("nextOffset")
            let installed = try r.readBool("installed")
            let success = try r.readBool("success")
            let installing = try r.readBool("installing")
            body = .snapshotRecoveryResponse(
                SnapshotRecoveryResponse(
                    index: index, snapshotTerm: snapshotTerm, nextOffset: nextOffset, installed: installed, success: success,
                    installing: installing))
        case .removed:
            body = .removed(configIndex: try r.readUInt64("configIndex"))
        }
        self.init(from: from, to: to, term: term, body: body)
    }

    /// index u64 + term u64 + type u8 + payload length u32.
    static let minimumEntrySize = 8 + 8 + 1 + 4

    enum BodyTag: UInt8 {
        case appendEntries = 1
        case appendEntriesResponse = 2
        case heartbeat = 3
        case heartbeatResponse = 4
        case requestVote = 5
        case requestVoteResponse = 6
        case snapshotRequest = 7
        case snapshotResponse = 8
        case snapshotRecoveryRequest = 9
        case snapshotRecoveryResponse = 10
        case removed = 11
        case readRound = 12
        case readRoundResponse = 13
    }
}

extension Message.Body {
    /// Roughly the bytes of the bulk of the body, so that encoding reserves once.
    var encodedSizeHint: Int {
        switch self {
        case let .appendEntries(a): a.entries.reduce(0) { $0 + Message.minimumEntrySize + $1.payload.count }
        case let .snapshotRecoveryRequest(c): c.data.count + 32
        case .snapshotRequest: 256
        default: 48
        }
    }
}
