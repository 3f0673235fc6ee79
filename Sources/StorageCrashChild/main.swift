// storage-crash-child DIR SEED: the subject of RaftStorage's crash tests.
//
// Opens a NodeStorage in DIR (whatever a previous run, killed at a random moment, left
// there) and then, forever, appends batches of entries, syncs them, and now and then
// bumps the term, truncates a suffix, takes a snapshot and compacts the log. It reports on
// stdout, one line each, unbuffered:
//
//   D FIRST LAST TERM   entries FIRST...LAST with TERM are durable (after sync)
//   T TERM              the term is durable (after MetaStore.save)
//   X FROM              about to remove the entries from FROM on
//   S INDEX TERM        a snapshot of INDEX, TERM is durable (after finish)
//   C INDEX             about to compact the log through INDEX
//
// Payloads and snapshot states are functions of (index, term), so the test can check
// every byte it finds after the kill (`CrashModel` in the tests has the same functions).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Raft
import RaftStorage

func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + done, $0.count - done) }
        if n <= 0 { exit(3) }
        done += n
    }
}

func fail(_ message: String) -> Never {
    let bytes = Array("storage-crash-child: \(message)\n".utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
    exit(1)
}

/// The payload of the entry at `index` with `term` (its size varies with the index).
func payload(_ index: LogIndex, _ term: Term) -> [UInt8] {
    var h = StableHash()
    h.combine(index)
    h.combine(term)
    var x = h.finalized
    let size = Int(16 + index % 200)
    return (0..<size).map { _ in
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: x >> 33)
    }
}

/// A piece of the state of the snapshot at (`index`, `term`): text, so it compresses.
func statePiece(_ index: LogIndex, _ term: Term, _ k: Int) -> [UInt8] {
    Array("snapshot \(index) \(term) piece \(k): \(StableHash.of(Array("\(index)/\(term)/\(k)".utf8)).hex16)\n".utf8)
}

func statePieces(_ index: LogIndex) -> Int { Int(100 + (index * 7919) % 4000) }

/// splitmix64, seeded from the command line.
struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

let args = CommandLine.arguments
guard args.count == 3, let seed = UInt64(args[2]) else { fail("usage: storage-crash-child DIR SEED") }
var rng = Random(state: seed)

do {
    let storage = try NodeStorage(directory: args[1], logOptions: .init(segmentSize: 64 << 10, writeBufferSize: 16 << 10))
    let state = try storage.durableState()
    var term = max(state.hardState.term, state.log.lastTerm, 1)
    if term != state.hardState.term {
        try storage.meta.save(HardState(term: term, votedFor: "n1"))
        say("T \(term)")
    }
    var sinceSnapshot = 0
    while true {
        let roll = rng.next() % 100
        let log = storage.log.log
        if roll < 4 {
            term += 1
            try storage.meta.save(HardState(term: term, votedFor: "n1"))
            say("T \(term)")
        } else if roll < 7 && log.lastIndex > log.prevIndex + 5 {
            let from = log.lastIndex - rng.next() % 5
            say("X \(from)")
            try storage.log.truncate(from: from)
            term += 1
            try storage.meta.save(HardState(term: term, votedFor: "n1"))
            say("T \(term)")
        } else if sinceSnapshot > 60 && log.lastIndex > log.prevIndex {
            let index = log.lastIndex
            let snapTerm = log.lastTerm
            let writer = try storage.snapshots.create(index: index, term: snapTerm, configuration: Configuration(voters: ["n1", "n2", "n3"]))
            for k in 0..<statePieces(index) { try writer.write(statePiece(index, snapTerm, k)) }
            _ = try writer.finish()
            say("S \(index) \(snapTerm)")
            sinceSnapshot = 0
            if index > 20, let t = log.term(at: index - 20), index - 20 > log.prevIndex {
                say("C \(index - 20)")
                try storage.log.compact(through: index - 20, term: t)
            }
        } else {
            let n = 1 + rng.next() % 40
            let first = log.lastIndex + 1
            let batch = (first..<first + n).map { Entry(index: $0, term: term, type: .command, payload: payload($0, term)) }
            try storage.log.append(batch)
            try storage.sync()
            say("D \(first) \(first + n - 1) \(term)")
            sinceSnapshot += Int(n)
        }
    }
} catch {
    fail("\(error)")
}
