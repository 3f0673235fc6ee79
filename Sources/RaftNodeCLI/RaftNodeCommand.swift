import ArgumentParser
import CommandLineSupport
import Foundation
import Raft
import RaftNode
import RaftNodeWire

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

    // The node's settings: flags, defaults and help from the one table (NodeSettings.table).
    @Option(name: .customLong("election-timeout"), help: ArgumentHelp(NodeSettings.help(flag: "election-timeout")))
    var electionTimeout = NodeSettings.defaultText(flag: "election-timeout")

    @Option(help: ArgumentHelp(NodeSettings.help(flag: "heartbeat")))
    var heartbeat = NodeSettings.defaultText(flag: "heartbeat")

    @Option(name: .customLong("snapshot-threshold"), help: ArgumentHelp(NodeSettings.help(flag: "snapshot-threshold")))
    var snapshotThreshold = NodeSettings.defaultText(flag: "snapshot-threshold")

    @Option(name: .customLong("snapshot-amortize-from"), help: ArgumentHelp(NodeSettings.help(flag: "snapshot-amortize-from")))
    var snapshotAmortizeFrom = NodeSettings.defaultText(flag: "snapshot-amortize-from")

    @Option(name: .customLong("snapshot-trailing"), help: ArgumentHelp(NodeSettings.help(flag: "snapshot-trailing")))
    var snapshotTrailing = NodeSettings.defaultText(flag: "snapshot-trailing")

    @Option(name: .customLong("snapshot-chunk"), help: ArgumentHelp(NodeSettings.help(flag: "snapshot-chunk")))
    var snapshotChunk = NodeSettings.defaultText(flag: "snapshot-chunk")

    @Option(name: .customLong("max-entries-per-request"), help: ArgumentHelp(NodeSettings.help(flag: "max-entries-per-request")))
    var maxEntriesPerRequest = NodeSettings.defaultText(flag: "max-entries-per-request")

    @Option(name: .customLong("request-timeout"), help: ArgumentHelp(NodeSettings.help(flag: "request-timeout")))
    var requestTimeout = NodeSettings.defaultText(flag: "request-timeout")

    /// The settings flags as given, by flag name.
    var settingFlags: [(String, String)] {
        [
            ("election-timeout", electionTimeout), ("heartbeat", heartbeat), ("snapshot-threshold", snapshotThreshold),
            ("snapshot-amortize-from", snapshotAmortizeFrom), ("snapshot-trailing", snapshotTrailing), ("snapshot-chunk", snapshotChunk), ("max-entries-per-request", maxEntriesPerRequest),
            ("request-timeout", requestTimeout),
        ]
    }

    /// The settings the flags give, or the first flag that is wrong.
    func settings() throws -> NodeSettings {
        var s = NodeSettings()
        for (flag, value) in settingFlags {
            do {
                try s.set(NodeSettings.row(flag: flag)!, value)
            } catch {
                throw ValidationError("--\(flag): \(error)")
            }
        }
        do {
            try s.validate()
        } catch {
            throw ValidationError("--heartbeat \(heartbeat) with --election-timeout \(electionTimeout): \(error)")
        }
        return s
    }

    @Flag(name: .customLong("exit-on-stdin-close"), help: "Exit when standard input closes (for a supervising parent).")
    var exitOnStdinClose = false

    @Flag(name: .customLong("keep-history"), help: "Keep compacted log segments and superseded snapshots in DATA-DIR/archive/ and write apply events, so that a checker sees the whole history (the harness sets it). Without it an archive/ left in DATA-DIR is deleted.")
    var keepHistory = false

    func validate() throws {
        guard isValidNodeName(name) else { throw ValidationError("--name '\(name)' is not a node name ([a-z][a-z0-9-]*)") }
        for m in members where parseMember(m) == nil {
            throw ValidationError("--member '\(m)' is not NAME=ADDRESS")
        }
        _ = try settings()
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
        options.apply(try settings())
        options.exitOnStdinClose = exitOnStdinClose
        options.keepHistory = keepHistory
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
