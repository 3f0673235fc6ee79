#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Test-only: what a power cut would take from a node's files, so that a harness can cut the
/// power of one node (`crash NODE`, SPEC section 2) while the machine runs on.
///
/// Every file this code opens for writing is followed: its size when opened (what was there
/// is taken as durable), each fsync (its size then is durable), truncations, renames and
/// removals. A crash then rolls each followed file back to what was synced: bytes written
/// after the last fsync are cut, a file created and never synced is deleted. Everything else
/// stays: the page cache survives a crash of the process, not of the power, and nothing else
/// is modelled (a rename or a creation counts as durable once done; this code syncs the
/// directory after each anyway).
///
/// Off unless asked for. Two ways: a raft-node started with `RAFT_UNSYNCED_JOURNAL=PATH`
/// appends each record as a line to PATH (the harness reads it after SIGKILL); the
/// simulator follows every file under a root in memory (and, as its time is simulated,
/// skips the fsync calls themselves).
public enum UnsyncedWrites {
    /// One fact about a followed file.
    public enum Record: Sendable, Hashable {
        /// Opened for writing; `created` when it did not exist, else `size` bytes were there.
        case opened(String, size: UInt64, created: Bool)
        case synced(String, size: UInt64)
        case truncated(String, size: UInt64)
        case renamed(String, to: String)
        case removed(String)

        var line: String {
            switch self {
            case let .opened(p, size, created): "o\t\(size)\t\(created ? 1 : 0)\t\(p)"
            case let .synced(p, size): "s\t\(size)\t\(p)"
            case let .truncated(p, size): "t\t\(size)\t\(p)"
            case let .renamed(a, b): "r\t\(a)\t\(b)"
            case let .removed(p): "d\t\(p)"
            }
        }

        init?(line: Substring) {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch f.first {
            case "o" where f.count == 4: guard let n = UInt64(f[1]) else { return nil }; self = .opened(f[3], size: n, created: f[2] == "1")
            case "s" where f.count == 3: guard let n = UInt64(f[1]) else { return nil }; self = .synced(f[2], size: n)
            case "t" where f.count == 3: guard let n = UInt64(f[1]) else { return nil }; self = .truncated(f[2], size: n)
            case "r" where f.count == 3: self = .renamed(f[1], to: f[2])
            case "d" where f.count == 2: self = .removed(f[1])
            default: return nil
            }
        }
    }

    /// What is durable of each followed file: nil for a file never synced since it was
    /// created, else its durable size.
    public struct Ledger: Sendable {
        public private(set) var durable: [String: UInt64?] = [:]

        public init() {}

        mutating func set(_ path: String, _ size: UInt64?) { durable[path] = .some(size) }

        public mutating func apply(_ r: Record) {
            switch r {
            case let .opened(p, size, created):
                if created {
                    durable[p] = .some(nil)
                } else if durable[p] == nil {
                    durable[p] = .some(size)
                }
            case let .synced(p, size): durable[p] = .some(size)
            case let .truncated(p, size):
                if case let .some(.some(d)) = durable[p], d > size { durable[p] = .some(size) }
            case let .renamed(a, b):
                durable[b] = durable.removeValue(forKey: a) ?? .some(nil)
            case let .removed(p): durable[p] = nil
            }
        }

        /// Cuts what was not synced from every followed file under `directory`; returns a
        /// line for each file changed, naming it by its path below `directory`.
        public func rollBack(under directory: String) -> [String] {
            let prefix = directory.hasSuffix("/") ? directory : directory + "/"
            var done: [String] = []
            for (path, size) in durable.sorted(by: { $0.key < $1.key }) where path.hasPrefix(prefix) {
                var st = stat()
                guard stat(path, &st) == 0 else { continue }
                let name = String(path.dropFirst(prefix.count))
                if let size {
                    if UInt64(st.st_size) > size, truncate(path, off_t(size)) == 0 {
                        done.append("\(name): \(UInt64(st.st_size) - size) unsynced bytes cut, \(size) kept")
                    }
                } else if unlink(path) == 0 {
                    done.append("\(name): never synced, removed")
                }
            }
            return done
        }
    }

    /// The ledger of a journal file a raft-node wrote (a line it could not finish is skipped).
    public static func ledger(journal path: String) -> Ledger {
        var ledger = Ledger()
        guard let bytes = try? FileSystem.readFile(path) else { return ledger }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            if let r = Record(line: line) { ledger.apply(r) }
        }
        return ledger
    }

    // MARK: Following, in this process

    private struct State: ~Copyable {
        /// Roots followed in memory, and the ledger of what is under them.
        var roots: [String: Bool] = [:]
        var ledger = Ledger()
        /// The journal of a raft-node (RAFT_UNSYNCED_JOURNAL), when set.
        var journal: Int32 = -1
    }

    private static let state = Mutex(State())
    private static let active = Atomic<Bool>(false)
    private static let skipping = Atomic<Bool>(false)

    /// Follows every file under `root` in memory from now on; with `skipSync`, fsync calls on
    /// them return at once (the simulator's time is simulated; nothing real depends on them).
    public static func follow(root: String, skipSync: Bool) {
        state.withLock { $0.roots[root] = skipSync }
        active.store(true, ordering: .sequentiallyConsistent)
        if skipSync { skipping.store(true, ordering: .sequentiallyConsistent) }
    }

    /// Stops following `root` and forgets its files.
    public static func forget(root: String) {
        state.withLock { s in
            s.roots[root] = nil
            let prefix = root.hasSuffix("/") ? root : root + "/"
            for p in s.ledger.durable.keys where p.hasPrefix(prefix) { s.ledger.apply(.removed(p)) }
        }
    }

    /// What is durable now of the files followed in memory.
    public static var ledger: Ledger { state.withLock { $0.ledger } }

    /// Takes `earlier` as what is durable of the files under `directory`: a process killed
    /// before its fsyncs were done (in simulated time) leaves its bytes in the page cache,
    /// unsynced. A file `earlier` does not know was created since: never synced.
    public static func restore(_ earlier: Ledger, under directory: String) {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        state.withLock { s in
            for path in s.ledger.durable.keys.sorted() where path.hasPrefix(prefix) {
                s.ledger.set(path, earlier.durable[path] ?? nil)
            }
        }
    }

    /// Starts the journal of RAFT_UNSYNCED_JOURNAL, if set (raft-node calls it at its start).
    public static func startJournalFromEnvironment() {
        guard let path = getenv("RAFT_UNSYNCED_JOURNAL").map({ String(cString: $0) }), !path.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        state.withLock { $0.journal = fd }
        active.store(true, ordering: .sequentiallyConsistent)
    }

    static var isActive: Bool { active.load(ordering: .relaxed) }

    /// Whether fsync on `path` is skipped (a followed root of the simulator).
    static func skipsSync(_ path: String) -> Bool {
        guard skipping.load(ordering: .relaxed) else { return false }
        return state.withLock { s in s.roots.contains { $0.value && path.hasPrefix($0.key) } }
    }

    static func note(_ r: Record) {
        guard isActive else { return }
        state.withLock { s in
            if s.journal >= 0 {
                let line = r.line + "\n"
                _ = line.withCString { write(s.journal, $0, strlen($0)) }
                return
            }
            let path: String
            switch r {
            case let .opened(p, _, _), let .synced(p, _), let .truncated(p, _), let .removed(p): path = p
            case let .renamed(_, b): path = b
            }
            if s.roots.keys.contains(where: { path.hasPrefix($0) }) { s.ledger.apply(r) }
        }
    }
}
