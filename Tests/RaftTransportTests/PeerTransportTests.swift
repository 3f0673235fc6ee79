import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Raft
@testable import RaftTransport
import Testing

/// What one transport received and reported.
final class Inbox: Sendable {
    private let messages = NIOLockedValueBox<[Message]>([])
    private let errors = NIOLockedValueBox<[(what: String, detail: String)]>([])

    var received: [Message] { messages.withLockedValue { $0 } }
    var reported: [(what: String, detail: String)] { errors.withLockedValue { $0 } }

    func add(_ m: Message) { messages.withLockedValue { $0.append(m) } }
    func report(_ what: String, _ detail: String) { errors.withLockedValue { $0.append((what, detail)) } }

    func errors(_ what: String, containing text: String = "") -> [String] {
        reported.filter { $0.what == what && (text.isEmpty || $0.detail.contains(text)) }.map(\.detail)
    }
}

/// Waits until `condition` holds; the timeout is only a safety net for a broken build.
func eventually(_ timeout: Duration = .seconds(15), _ condition: () -> Bool) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// A short directory under /tmp, so that socket paths stay well under 104 bytes.
func shortTempDir() throws -> String {
    var template = Array("/tmp/rtt-XXXXXX".utf8CString)
    let ok = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
    guard ok else { throw CocoaError(.fileWriteUnknown) }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func removeDir(_ dir: String) { try? FileManager.default.removeItem(atPath: dir) }

/// A transport with its inbox.
struct Node {
    let transport: PeerTransport
    let inbox: Inbox

    init(
        _ name: NodeID, at address: String, cluster: String = "test-cluster", maxFrameBytes: Int = PeerTransport.defaultMaxFrameBytes,
        maximumBackoff: TimeAmount = OutboundPeer.defaultMaximumBackoff, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        known: @escaping @Sendable (NodeID) -> Bool = { _ in true },
        onPeerAddress: @escaping @Sendable (NodeID, String) -> Void = { _, _ in }
    ) {
        let inbox = Inbox()
        self.inbox = inbox
        transport = PeerTransport(
            name: name, clusterID: cluster, listen: address, group: group, maxFrameBytes: maxFrameBytes,
            maxQueuedBytes: maxFrameBytes, maximumBackoff: maximumBackoff,
            onMessage: { inbox.add($0) }, onError: { inbox.report($0, $1) }, isKnownPeer: known, onPeerAddress: onPeerAddress)
    }
}

func heartbeat(_ from: NodeID, _ to: NodeID, _ n: UInt64) -> Message {
    Message(from: from, to: to, term: 1, body: .heartbeat(commitIndex: n))
}

/// Connects a raw socket to `path`, writes `bytes`, and keeps the connection until closed.
func rawConnect(_ address: String, writing bytes: [UInt8]) async throws -> any Channel {
    let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    let channel: any Channel
    switch try PeerAddress(parsing: address) {
    case let .unix(path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
    case let .tcp(host, port): channel = try await bootstrap.connect(host: host, port: port).get()
    }
    try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    return channel
}

func helloFrame(cluster: String = "test-cluster", from: NodeID, to: NodeID) -> [UInt8] {
    Array(Frame.encode(.hello, payload: Hello(clusterID: cluster, sender: from, receiver: to, senderAddress: "unix:/nowhere").encoded(), allocator: .init()).readableBytesView)
}

@Suite(.serialized) struct PeerTransportTests {
    /// A follower far behind must still hear heartbeats: messages other than log entries and
    /// snapshot chunks go ahead of those still queued. Deterministic: n1's transport has an
    /// event loop of its own, and everything is queued from a task on that loop, so all of it
    /// waits for the same drain.
    @Test func urgentMessagesOvertakeQueuedEntries() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let a = Node("n1", at: "\(dir)/n1.sock", group: group)
        let b = Node("n2", at: "\(dir)/n2.sock")
        try await a.transport.start()
        try await b.transport.start()
        a.transport.setPeers(["n2": "\(dir)/n2.sock"])
        let appends = (1...10).map { i in
            Message(from: "n1", to: "n2", term: 1, body: .appendEntries(AppendEntries(
                prevLogIndex: LogIndex(i - 1), prevLogTerm: 1,
                entries: [Entry(index: LogIndex(i), term: 1, type: .command, payload: [UInt8](repeating: 7, count: 100_000))], commitIndex: 0)))
        }
        let transport = a.transport
        try await group.next().submit {
            for m in appends { transport.send(m) }
            transport.send(heartbeat("n1", "n2", 9))
        }.get()
        #expect(
            try await eventually { b.inbox.received.count == 11 },
            "received \(b.inbox.received.count); reported \(a.inbox.reported + b.inbox.reported); n1's queue to n2 \(String(describing: a.transport.queueStatus(of: "n2")))")
        #expect(b.inbox.received.first == heartbeat("n1", "n2", 9), "the heartbeat went first")
        #expect(Array(b.inbox.received.dropFirst()) == appends, "the entries in their order")
        await a.transport.shutdown()
        await b.transport.shutdown()
        try await group.shutdownGracefully()
    }

    /// What was queued for a peer that is gone is not delivered to the next process at its
    /// address (restarted, or wiped and added again under its name): it would get stale
    /// entries, chunks and removal notices meant for the one before.
    @Test func framesQueuedWhileThePeerIsDownAreNotDeliveredToItsNextIncarnation() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"]
        let a = Node("n1", at: book["n1"]!)
        try await a.transport.start()
        a.transport.setPeers(book)
        let stale = Message(from: "n1", to: "n2", term: 1, body: .removed(configIndex: 7))
        a.transport.send(stale)
        #expect(try await eventually { (a.transport.queueStatus(of: "n2")?.unreachableFrames ?? 0) >= 1 }, "the dial failed and the notice was dropped")
        let b = Node("n2", at: book["n2"]!)
        try await b.transport.start()
        var i: UInt64 = 1
        #expect(
            try await eventually {
                a.transport.send(heartbeat("n1", "n2", i))
                i += 1
                return !b.inbox.received.isEmpty
            })
        #expect(!b.inbox.received.contains(stale), "the new n2 got a message queued before it started")
        await a.transport.shutdown()
        await b.transport.shutdown()
    }

    /// A peer that comes back dials this member (a restarted follower polls for votes): the
    /// redial towards it is made at the next message, not after the backoff (five seconds here).
    @Test func aPeerThatDialsUsIsRedialledAtOnce() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"]
        let a = Node("n1", at: book["n1"]!, maximumBackoff: .seconds(5))
        try await a.transport.start()
        a.transport.setPeers(book)
        // Failed dials grow the backoff (20, 40, ... ms): dials at about 0.02, 0.06, 0.14,
        // 0.3, 0.62, 1.26 and 2.54 s, the next at about 5.1 s.
        for i in 1...30 {
            a.transport.send(heartbeat("n1", "n2", UInt64(i)))
            try await Task.sleep(for: .milliseconds(100))
        }
        let b = Node("n2", at: book["n2"]!)
        try await b.transport.start()
        b.transport.setPeers(book)
        b.transport.send(heartbeat("n2", "n1", 1))
        #expect(try await eventually { a.inbox.received.contains(heartbeat("n2", "n1", 1)) })
        let sent = ContinuousClock.now
        a.transport.send(heartbeat("n1", "n2", 100))
        #expect(try await eventually { b.inbox.received.contains(heartbeat("n1", "n2", 100)) })
        let took = sent.duration(to: .now)
        #expect(took < .milliseconds(1000), "n1 reached n2 \(took) after n2 dialled it")
        await a.transport.shutdown()
        await b.transport.shutdown()
    }

    @Test func twoTransportsExchangeEveryKindOfMessage() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let a = Node("n1", at: "\(dir)/n1.sock")
        let b = Node("n2", at: "\(dir)/n2.sock")
        try await a.transport.start()
        try await b.transport.start()
        a.transport.setPeers(["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"])
        b.transport.setPeers(["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"])

        // Every body, including a 64 KiB snapshot chunk and 300 entries, in both directions.
        let toB = sampleMessages.map { Message(from: "n1", to: "n2", term: $0.term, body: $0.body) }
        let toA = sampleMessages.map { Message(from: "n2", to: "n1", term: $0.term, body: $0.body) }
        for m in toB { a.transport.send(m) }
        for m in toA { b.transport.send(m) }
        #expect(try await eventually { b.inbox.received.count == toB.count && a.inbox.received.count == toA.count })
        // Intact, and in order within each lane: log entries and snapshot chunks keep their
        // order, everything else keeps its own (and may overtake them).
        for (got, sent) in [(b.inbox.received, toB), (a.inbox.received, toA)] {
            #expect(got.filter { !PeerTransport.isUrgent($0) } == sent.filter { !PeerTransport.isUrgent($0) }, "bulk in order and intact")
            #expect(got.filter(PeerTransport.isUrgent) == sent.filter(PeerTransport.isUrgent), "urgent in order and intact")
        }
        #expect(a.inbox.reported.isEmpty && b.inbox.reported.isEmpty)

        // A larger AppendEntries: 5,000 entries of 200 bytes, about 1 MiB in one frame.
        let entries = (1...5000).map { Entry(index: UInt64($0), term: 2, type: .command, payload: [UInt8](repeating: UInt8($0 % 251), count: 200)) }
        let big = Message(from: "n1", to: "n2", term: 2, body: .appendEntries(AppendEntries(prevLogIndex: 0, prevLogTerm: 0, entries: entries, commitIndex: 0)))
        a.transport.send(big)
        #expect(try await eventually { b.inbox.received.last == big })

        await a.transport.shutdown()
        await b.transport.shutdown()
        #expect(FileSystem.kind(of: "\(dir)/n1.sock") == .missing, "shutdown removes the socket file")
    }

    @Test func threeTransportsAllTalkToEachOther() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let names = ["n1", "n2", "n3"]
        let book = Dictionary(uniqueKeysWithValues: names.map { ($0, "\(dir)/\($0).sock") })
        let nodes = names.map { Node($0, at: book[$0]!) }
        for n in nodes {
            try await n.transport.start()
            n.transport.setPeers(book)
        }
        for round in 1...50 {
            for (i, n) in nodes.enumerated() {
                for (j, other) in names.enumerated() where j != i {
                    n.transport.send(heartbeat(names[i], other, UInt64(round)))
                }
            }
        }
        #expect(try await eventually { nodes.allSatisfy { $0.inbox.received.count == 100 } })
        for (i, n) in nodes.enumerated() {
            for sender in names where sender != names[i] {
                let fromSender = n.inbox.received.filter { $0.from == sender }
                #expect(fromSender == (1...50).map { heartbeat(sender, names[i], UInt64($0)) })
            }
        }
        for n in nodes { await n.transport.shutdown() }
    }

    @Test func aPeerThatComesUpLaterGetsLaterMessages() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"]
        let a = Node("n1", at: book["n1"]!)
        try await a.transport.start()
        a.transport.setPeers(book)
        // n2 is not there: these fail to connect, and the transport backs off.
        for i in 1...5 { a.transport.send(heartbeat("n1", "n2", UInt64(i))) }
        try await Task.sleep(for: .milliseconds(300))

        let b = Node("n2", at: book["n2"]!)
        try await b.transport.start()
        for i in 6...10 { a.transport.send(heartbeat("n1", "n2", UInt64(i))) }
        #expect(try await eventually { b.inbox.received.contains(heartbeat("n1", "n2", 10)) })

        // n2 goes away and a new n2 comes up at the same path: n1 reconnects.
        await b.transport.shutdown()
        for i in 11...15 { a.transport.send(heartbeat("n1", "n2", UInt64(i))) }
        try await Task.sleep(for: .milliseconds(200))
        let b2 = Node("n2", at: book["n2"]!)
        try await b2.transport.start()
        // Keep sending: what was sent while n2 was down may or may not arrive.
        var i: UInt64 = 16
        #expect(
            try await eventually {
                a.transport.send(heartbeat("n1", "n2", i))
                i += 1
                return b2.inbox.received.contains { if case .heartbeat(let c) = $0.body { c >= 16 } else { false } }
            })
        #expect(a.inbox.reported.isEmpty, "a peer that is down is not an error")
        await a.transport.shutdown()
        await b2.transport.shutdown()
    }

    @Test func anotherClusterIsRefusedAndReported() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"]
        let a = Node("n1", at: book["n1"]!, cluster: "blue")
        let b = Node("n2", at: book["n2"]!, cluster: "green")
        try await a.transport.start()
        try await b.transport.start()
        a.transport.setPeers(book)
        a.transport.send(heartbeat("n1", "n2", 1))
        #expect(try await eventually { !b.inbox.errors(PeerTransport.refusedPeer, containing: "cluster 'blue'").isEmpty })
        try await Task.sleep(for: .milliseconds(100))
        #expect(b.inbox.received.isEmpty)
        await a.transport.shutdown()
        await b.transport.shutdown()
    }

    @Test func aSenderWithNoAddressHereSaysWhereItListensSoThatItCanBeAnswered() async throws {
        // A member cut off while a new member joined and became leader holds no address for
        // it; the leader's hello says where it listens (explore --sim found a member that could
        // never answer such a leader).
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let learned = NIOLockedValueBox<[String: String]>([:])
        let b = Node("n2", at: "\(dir)/n2.sock", onPeerAddress: { name, address in learned.withLockedValue { $0[name] = address } })
        let a = Node("n5", at: "\(dir)/n5.sock")
        try await a.transport.start()
        try await b.transport.start()
        a.transport.setPeers(["n2": "\(dir)/n2.sock"])
        a.transport.send(heartbeat("n5", "n2", 1))
        #expect(try await eventually { b.inbox.received == [heartbeat("n5", "n2", 1)] })
        #expect(learned.withLockedValue { $0 } == ["n5": "\(dir)/n5.sock"])
        // Told the address, it answers.
        b.transport.setPeers(learned.withLockedValue { $0 })
        b.transport.send(heartbeat("n2", "n5", 2))
        #expect(try await eventually { a.inbox.received == [heartbeat("n2", "n5", 2)] })
        await a.transport.shutdown()
        await b.transport.shutdown()
    }

    @Test func anUnknownSenderIsRefusedAndReported() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock", "n9": "\(dir)/n9.sock"]
        let b = Node("n2", at: book["n2"]!, known: { $0 == "n1" })
        let stranger = Node("n9", at: book["n9"]!)
        let friend = Node("n1", at: book["n1"]!)
        for n in [b, stranger, friend] {
            try await n.transport.start()
            n.transport.setPeers(book)
        }
        stranger.transport.send(heartbeat("n9", "n2", 1))
        friend.transport.send(heartbeat("n1", "n2", 2))
        #expect(try await eventually { !b.inbox.errors(PeerTransport.refusedPeer, containing: "unknown sender 'n9'").isEmpty })
        #expect(try await eventually { b.inbox.received == [heartbeat("n1", "n2", 2)] })
        #expect(!b.inbox.received.contains { $0.from == "n9" })

        // A hello meant for someone else (a dial to the wrong address) is refused too.
        let wrong = try await rawConnect(book["n2"]!, writing: helloFrame(from: "n1", to: "n3"))
        #expect(try await eventually { !b.inbox.errors(PeerTransport.refusedPeer, containing: "dialled n3").isEmpty })
        try await wrong.closeFuture.get()
        for n in [b, stranger, friend] { await n.transport.shutdown() }
    }

    @Test func garbageAndOversizeFramesAreReportedAndTheTransportGoesOn() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"]
        let a = Node("n1", at: book["n1"]!)
        let b = Node("n2", at: book["n2"]!, maxFrameBytes: 1 << 20)
        try await a.transport.start()
        try await b.transport.start()
        a.transport.setPeers(book)
        a.transport.send(heartbeat("n1", "n2", 1))
        #expect(try await eventually { b.inbox.received.count == 1 })

        // Random bytes, with a first byte that makes the length prefix large.
        var rng = SplitMix64(state: 7)
        let random = try await rawConnect(book["n2"]!, writing: [0x7F] + rng.bytes(4096))
        #expect(try await eventually { b.inbox.errors(PeerTransport.badFrame).count == 1 })
        try await random.closeFuture.get()  // closed by n2

        // After a good hello: a length prefix of nearly 4 GiB, then nothing.
        let oversize = try await rawConnect(book["n2"]!, writing: helloFrame(from: "n1", to: "n2") + [0xFF, 0xFF, 0xFF, 0xF0])
        #expect(try await eventually { !b.inbox.errors(PeerTransport.badFrame, containing: "exceeds the limit").isEmpty })
        try await oversize.closeFuture.get()

        // Just over the limit, and a wrong format version.
        let overByOne = try await rawConnect(book["n2"]!, writing: helloFrame(from: "n1", to: "n2") + [0, 0x10, 0, 1])
        try await overByOne.closeFuture.get()
        var version = helloFrame(from: "n1", to: "n2")
        version[4] = 99
        let badVersion = try await rawConnect(book["n2"]!, writing: version)
        try await badVersion.closeFuture.get()
        #expect(!b.inbox.errors(PeerTransport.badFrame, containing: "version 99").isEmpty)

        // A well-framed message that does not decode, and one that claims another sender.
        var undecodable = helloFrame(from: "n1", to: "n2")
        undecodable += Array(Frame.encode(.message, payload: [1, 2, 3], allocator: .init()).readableBytesView)
        let c1 = try await rawConnect(book["n2"]!, writing: undecodable)
        try await c1.closeFuture.get()
        #expect(!b.inbox.errors(PeerTransport.badFrame, containing: "undecodable").isEmpty)
        var spoofed = helloFrame(from: "n1", to: "n2")
        spoofed += Array(Frame.encode(.message, payload: heartbeat("n3", "n2", 9).encoded(), allocator: .init()).readableBytesView)
        let c2 = try await rawConnect(book["n2"]!, writing: spoofed)
        try await c2.closeFuture.get()
        #expect(!b.inbox.errors(PeerTransport.badFrame, containing: "from n3").isEmpty)

        // The real peer's connection was never disturbed.
        a.transport.send(heartbeat("n1", "n2", 2))
        #expect(try await eventually { b.inbox.received == [heartbeat("n1", "n2", 1), heartbeat("n1", "n2", 2)] })
        await a.transport.shutdown()
        await b.transport.shutdown()
    }

    @Test func tcpAddressesWork() async throws {
        let a = Node("n1", at: "tcp://127.0.0.1:0")
        let b = Node("n2", at: "tcp://127.0.0.1:0")
        try await a.transport.start()
        try await b.transport.start()
        let book = ["n1": try #require(a.transport.localAddress), "n2": try #require(b.transport.localAddress)]
        #expect(book["n1"]!.hasPrefix("tcp://127.0.0.1:") && !book["n1"]!.hasSuffix(":0"))
        a.transport.setPeers(book)
        b.transport.setPeers(book)
        let chunk = sampleMessages.first { if case .snapshotRecoveryRequest = $0.body { true } else { false } }!
        let toB = Message(from: "n1", to: "n2", term: 3, body: chunk.body)
        a.transport.send(toB)
        b.transport.send(heartbeat("n2", "n1", 4))
        #expect(try await eventually { b.inbox.received == [toB] && a.inbox.received == [heartbeat("n2", "n1", 4)] })
        await a.transport.shutdown()
        await b.transport.shutdown()
    }

    @Test func socketFilesAreOwnerOnlyAndStaleOnesAreReplaced() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let path = "\(dir)/n1.sock"
        // A stale socket file, as a killed process leaves it: bound, never unlinked.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(fd)
        #expect(FileSystem.kind(of: path) == .socket)

        let a = Node("n1", at: path)
        try await a.transport.start()
        #expect(FileSystem.mode(of: path) == 0o600)

        // A second transport on the same live path is refused, and the first keeps its file.
        let twin = Node("n1", at: path)
        await #expect(throws: PeerTransportError.addressInUse(path)) { try await twin.transport.start() }
        #expect(FileSystem.kind(of: path) == .socket)

        // A regular file in the way is not removed.
        let filePath = "\(dir)/file.sock"
        #expect(FileManager.default.createFile(atPath: filePath, contents: Data([1])))
        await #expect(throws: PeerTransportError.notASocket(filePath)) { try await Node("n3", at: filePath).transport.start() }

        await a.transport.shutdown()
    }

    @Test func aTooLongSocketPathIsAClearError() async throws {
        let path = "/tmp/" + String(repeating: "x", count: 120) + ".sock"
        let a = Node("n1", at: path)
        let error = await #expect(throws: PeerTransportError.self) { try await a.transport.start() }
        #expect("\(error!)".contains("limit is 103"))
        // In the address book it is reported, not fatal.
        a.transport.setPeers(["n2": path])
        #expect(!a.inbox.errors(PeerTransport.badAddress, containing: "n2").isEmpty)
        a.transport.send(heartbeat("n1", "n2", 1))
        #expect(!a.inbox.errors(PeerTransport.sendFailed, containing: "no address for n2").isEmpty)
        await a.transport.shutdown()
    }

    /// A peer that accepts but never reads fills its socket and then its queue; messages to
    /// it are dropped, `send` stays quick, and another peer is served meanwhile.
    @Test func aStuckPeerDoesNotHoldUpTheOthers() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let stuckPath = "\(dir)/stuck.sock"
        let stuck = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            .bind(unixDomainSocketPath: stuckPath).get()
        let book = ["n1": "\(dir)/n1.sock", "n2": stuckPath, "n3": "\(dir)/n3.sock"]
        let a = Node("n1", at: book["n1"]!, maxFrameBytes: 1 << 20)
        let c = Node("n3", at: book["n3"]!)
        try await a.transport.start()
        try await c.transport.start()
        a.transport.setPeers(book)

        let chunk = [UInt8](repeating: 0xAB, count: 256 * 1024)
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for i in 0..<200 {  // 50 MiB at a peer that takes nothing
                a.transport.send(
                    Message(from: "n1", to: "n2", term: 1, body: .snapshotRecoveryRequest(
                        SnapshotRecoveryRequest(index: 1, snapshotTerm: 1, offset: UInt64(i) * 262_144, data: chunk, done: false))))
            }
        }
        #expect(elapsed < .seconds(5), "send never waits")
        for i in 1...20 { a.transport.send(heartbeat("n1", "n3", UInt64(i))) }
        #expect(try await eventually { c.inbox.received.count == 20 })
        let status = try #require(a.transport.queueStatus(of: "n2"))
        #expect(status.droppedFrames > 0)
        #expect(status.queuedBytes <= a.transport.maxQueuedBytes)

        await a.transport.shutdown()
        await c.transport.shutdown()
        try await stuck.close()
    }

    @Test func aMessageOverTheFrameLimitIsReportedNotSent() async throws {
        let dir = try shortTempDir()
        defer { removeDir(dir) }
        let book = ["n1": "\(dir)/n1.sock", "n2": "\(dir)/n2.sock"]
        let a = Node("n1", at: book["n1"]!, maxFrameBytes: 4096)
        let b = Node("n2", at: book["n2"]!)
        try await a.transport.start()
        try await b.transport.start()
        a.transport.setPeers(book)
        a.transport.send(Message(from: "n1", to: "n2", term: 1, body: .snapshotRecoveryRequest(
            SnapshotRecoveryRequest(index: 1, snapshotTerm: 1, offset: 0, data: [UInt8](repeating: 1, count: 8192), done: true))))
        a.transport.send(heartbeat("n1", "n2", 1))
        #expect(try await eventually { b.inbox.received == [heartbeat("n1", "n2", 1)] })
        #expect(!a.inbox.errors(PeerTransport.sendFailed, containing: "over the frame limit").isEmpty)
        await a.transport.shutdown()
        await b.transport.shutdown()
    }
}
