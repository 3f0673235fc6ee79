import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// RaftNodeKit: start a raft-node process and talk to it, for every side that does (the
// harness's process back end, the node tests, the bench). No NIO.
//
//   ChildProcess.swift     spawn with a stdin pipe (exit-on-stdin-close), signals, reaping
//   NodeBinaries.swift     where the built raft-node (or harness) is
//   NodeConnection.swift   the client protocol over a blocking socket: typed requests and
//                          answers, one line at a time, with timeouts; and an async call

/// A child process started by the harness.
///
/// It starts with three descriptors and no others: its standard input, a pipe whose write
/// end only the harness holds (started with `--exit-on-stdin-close`, the child ends when the
/// harness ends by any path, a crash included), and its stdout and stderr, appended to a
/// file. Every other descriptor of the harness (the link proxies' listening sockets, the
/// proxied connections open at that moment, SwiftNIO's own) is closed in the child: a
/// child that held a copy of a proxied connection kept it open after the harness closed it,
/// so its sender never saw the connection end and wrote into it for ever. It runs in its
/// own process group, so a Ctrl-C at the terminal reaches the harness alone, which then ends
/// its children itself.
private let spawnLock = NSLock()

public struct ChildProcess: Sendable {
    public var pid: pid_t
    /// The write end of the child's stdin; closed once the child has exited.
    public var stdinWriteEnd: Int32

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func spawn(path: String, arguments: [String], output: String, environment extra: [String: String] = [:]) throws(SpawnError) -> ChildProcess {
        var fds: [Int32] = [-1, -1]
        // pipe2 is not visible from Swift on Linux: pipe, then close-on-exec, under a lock
        // so that no other spawn of this process can inherit the ends in between.
        spawnLock.lock()
        defer { spawnLock.unlock() }
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let out = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard out >= 0 else {
            let e = errno
            close(fds[0])
            close(fds[1])
            throw SpawnError(description: "cannot open \(output): \(String(cString: strerror(e)))")
        }
        defer {
            close(out)
            close(fds[0])
        }

        #if canImport(Glibc)
            var actions = posix_spawn_file_actions_t()
            var attr = posix_spawnattr_t()
        #else
            var actions: posix_spawn_file_actions_t?
            var attr: posix_spawnattr_t?
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, out, 2)
        try closeEveryOtherDescriptor(&actions)

        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setpgroup(&attr, 0)
        // The harness ignores or handles some signals itself; the child starts with defaults.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // This process's environment, with `extra` set over it.
        var env: [String] = []
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "="), extra[String(text[..<eq])] == nil { env.append(text) }
            p += 1
        }
        env += extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { for e in envp { free(e) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        guard rc == 0 else {
            close(fds[1])
            throw SpawnError(description: "cannot start \(path): \(String(cString: strerror(rc)))")
        }
        return ChildProcess(pid: pid, stdinWriteEnd: fds[1])
    }

    #if canImport(Glibc)
        typealias FileActions = posix_spawn_file_actions_t
    #else
        typealias FileActions = posix_spawn_file_actions_t?
    #endif

    /// Adds to `actions` the closing of every descriptor from 3 up, after the dup2s: glibc's
    /// `posix_spawn_file_actions_addclosefrom_np` (2.34 and later; not exported to Swift, so
    /// looked up by name), else a close for each descriptor open now (/proc/self/fd).
    private static func closeEveryOtherDescriptor(_ actions: inout FileActions) throws(SpawnError) {
        typealias CloseFrom = @convention(c) (UnsafeMutableRawPointer, Int32) -> Int32
        if let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") {
            let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            let rc = withUnsafeMutablePointer(to: &actions) { closeFrom(UnsafeMutableRawPointer($0), 3) }
            guard rc == 0 else { throw SpawnError(description: "posix_spawn_file_actions_addclosefrom_np: \(String(cString: strerror(rc)))") }
            return
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else {
            throw SpawnError(description: "cannot list /proc/self/fd to close the harness's descriptors in the child")
        }
        for fd in names.compactMap({ Int32($0) }).sorted() where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }

    public func signal(_ sig: Int32) {
        _ = kill(pid, sig)
    }

    /// The scheduler state letter of /proc/PID/stat (`T` stopped, `R` running, ...), nil
    /// when it cannot be read.
    public static func schedulerState(_ pid: pid_t) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].first { $0 != " " }
    }

    /// SIGSTOP, then waits (up to `timeoutMs`) until the kernel has stopped the child: a
    /// running process goes on for a moment after kill(2) returns, and a step after `pause`
    /// must not see it answer.
    public func stop(timeoutMs: Int = 2_000) async {
        signal(SIGSTOP)
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while ContinuousClock.now < deadline {
            guard let state = Self.schedulerState(pid), state != "T", state != "t", state != "Z" else { return }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// The same, for a caller on a thread of its own (the node tests).
    public func stopBlocking(timeoutMs: Int = 2_000) {
        signal(SIGSTOP)
        let deadline = ContinuousClock.now + .milliseconds(timeoutMs)
        while ContinuousClock.now < deadline {
            guard let state = Self.schedulerState(pid), state != "T", state != "t", state != "Z" else { return }
            usleep(1000)
        }
    }

    /// How the child ended, if it has (it is then reaped); nil while it runs.
    public func reap() -> String? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return nil }
        if r < 0 { return errno == ECHILD ? "gone" : nil }
        return Self.describe(status)
    }

    /// Waits for the child to end (reaping it).
    public func waitBlocking() -> String {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, 0)
            if r == pid { return Self.describe(status) }
            if r < 0 && errno != EINTR { return "gone" }
        }
    }

    public static func describe(_ status: Int32) -> String {
        let low = status & 0x7f
        if low == 0 { return "exit \((status >> 8) & 0xff)" }
        return "signal \(low)"
    }
}
