import ArgumentParser
import CommandLineSupport
import Foundation
import Raft
import RaftNode

/// `raft-node`: one member of a Raft cluster in one process.
@main
struct RaftNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-node",
        abstract: "Runs one member of a Raft cluster; peers talk over UNIX sockets (or tcp://host:port).",
        discussion: """
            A new cluster: start each member with the same --member list (every member, this one \
            included). A node to be added later: start it with --join, its --listen address and a \
            --member for each current member (where to reach them), then send \
            {"op":"add","node":NAME,"address":LISTEN-ADDRESS} to the leader's client socket.
            Files in --data-dir: meta, log/, snapshot/, events.jsonl, node.log; client.sock by default.
            Durations take ms, s or m (150ms, 2s). SIGTERM finishes what is in flight and exits 0.
            A bad flag is reported in one line on stderr, exit 2.

            Example (three terminals):
              raft-node --name n1 --data-dir /tmp/c/n1 --member n1=/tmp/c/n1.peer --member n2=/tmp/c/n2.peer --member n3=/tmp/c/n3.peer
              raft-node --name n2 --data-dir /tmp/c/n2 --member n1=/tmp/c/n1.peer --member n2=/tmp/c/n2.peer --member n3=/tmp/c/n3.peer
              raft-node --name n3 --data-dir /tmp/c/n3 --member n1=/tmp/c/n1.peer --member n2=/tmp/c/n2.peer --member n3=/tmp/c/n3.peer
              echo '{"id":1,"op":"put","key":"k","value":"v"}' | socat - UNIX-CONNECT:/tmp/c/n1/client.sock
            """)

    /// A bad flag answers one line on stderr and exit 2, never the usage pages.
    static func main() async { await mainWithOneLineErrors(name: "raft-node") }

    @Option(help: "This member's name ([a-z][a-z0-9-]*).")
    var name: String

    @Option(name: .customLong("data-dir"), help: "Directory for this member's files (created if missing).")
    var dataDir: String

    @Option(help: "Peer address to listen on: a UNIX socket path or tcp://host:port. Default: the --member address of this node, else DATA-DIR/peer.sock.")
    var listen: String?

    @Option(help: "Client socket path. Default: DATA-DIR/client.sock.")
    var client: String?

    @Option(name: .customLong("member"), help: "NAME=ADDRESS of a member of the first configuration; repeat for each (this node included). Used to bootstrap only when the data dir is empty. With --join: where to reach the current members.")
    var members: [String] = []

    @Flag(help: "Start with no configuration and wait to be added by the leader.")
    var join = false

    @Option(name: .customLong("cluster-id"), help: "Peers of another cluster id are refused.")
    var clusterID = "raft-testbed"

    @Option(name: .customLong("election-timeout"), help: "Election timeout, randomised up to twice this.")
    var electionTimeout = "150ms"

    @Option(help: "Heartbeat interval.")
    var heartbeat = "50ms"

    @Option(name: .customLong("snapshot-threshold"), help: "Applied entries since the last snapshot that trigger a new one (0: never).")
    var snapshotThreshold = 1000

    @Option(name: .customLong("snapshot-trailing"), help: "Entries kept in the log before a new snapshot's index.")
    var snapshotTrailing = 200

    @Option(name: .customLong("snapshot-chunk"), help: "Bytes of a snapshot chunk sent to a follower (e.g. 65536 or 64KiB).")
    var snapshotChunk = "64KiB"

    @Option(name: .customLong("max-entries-per-request"), help: "Entries in one AppendEntries.")
    var maxEntriesPerRequest = 200

    @Option(name: .customLong("request-timeout"), help: "A client request not done by then is answered timeout.")
    var requestTimeout = "10s"

    @Flag(name: .customLong("exit-on-stdin-close"), help: "Exit when standard input closes (for a supervising parent).")
    var exitOnStdinClose = false

    func validate() throws {
        guard isValidNodeName(name) else { throw ValidationError("--name '\(name)' is not a node name ([a-z][a-z0-9-]*)") }
        for m in members where parseMember(m) == nil {
            throw ValidationError("--member '\(m)' is not NAME=ADDRESS")
        }
        for (flag, value) in [("--election-timeout", electionTimeout), ("--heartbeat", heartbeat), ("--request-timeout", requestTimeout)] {
            guard let ms = parseDuration(value), ms > 0 else { throw ValidationError("\(flag) '\(value)' is not a duration like 150ms, 2s or 1m") }
        }
        guard let chunk = parseSize(snapshotChunk), chunk > 0, chunk <= 16 << 20 else {
            throw ValidationError("--snapshot-chunk '\(snapshotChunk)' is not a size from 1 byte to 16MiB")
        }
        guard snapshotThreshold >= 0, snapshotTrailing >= 0, maxEntriesPerRequest > 0 else {
            throw ValidationError("--snapshot-threshold and --snapshot-trailing must be >= 0 and --max-entries-per-request > 0")
        }
        guard parseDuration(heartbeat)! < parseDuration(electionTimeout)! else {
            throw ValidationError("--heartbeat must be shorter than --election-timeout")
        }
    }

    func run() async throws {
        var initial: [String: String] = [:]
        for m in members {
            let (n, a) = parseMember(m)!
            initial[n] = a
        }
        let peer = listen ?? initial[name] ?? dataDir + "/peer.sock"
        var options = NodeOptions(name: name, dataDir: dataDir, peerAddress: peer, clientSocket: client ?? dataDir + "/client.sock")
        options.clusterID = clusterID
        options.initialMembers = initial
        options.setTimes(electionMs: parseDuration(electionTimeout)!, heartbeatMs: parseDuration(heartbeat)!)
        options.settings.snapshotThreshold = snapshotThreshold
        options.settings.snapshotTrailing = snapshotTrailing
        options.settings.snapshotChunkSize = parseSize(snapshotChunk)!
        options.settings.maxEntriesPerRequest = maxEntriesPerRequest
        options.requestTimeoutMs = parseDuration(requestTimeout)!
        options.exitOnStdinClose = exitOnStdinClose
        options.join = join
        do {
            let code = try await NodeRuntime.run(options)
            throw ExitCode(code)
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("raft-node: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func parseMember(_ s: String) -> (String, String)? {
        guard let eq = s.firstIndex(of: "=") else { return nil }
        let n = String(s[..<eq]), a = String(s[s.index(after: eq)...])
        return isValidNodeName(n) && !a.isEmpty ? (n, a) : nil
    }
}
