#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Raft

/// The text of the current `errno`.
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code)) + " (errno \(code))"
}

/// An open file descriptor and its path (for error messages). Closed when released.
final class File {
    let path: String
    private var fd: Int32
    /// Opened for writing while `UnsyncedWrites` follows files: its syncs are noted.
    private let followed: Bool

    /// Opens `path` with `open(2)` flags.
    init(path: String, flags: Int32, mode: mode_t = 0o644) throws {
        self.path = path
        let writing = (flags & O_ACCMODE) != O_RDONLY
        followed = writing && UnsyncedWrites.isActive
        var existed = false
        if followed {
            var st = stat()
            existed = stat(path, &st) == 0 && (flags & O_TRUNC) == 0
        }
        var fd: Int32
        repeat { fd = open(path, flags | O_CLOEXEC, mode) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw StorageError(.io, file: path, "cannot open: \(errnoText())") }
        self.fd = fd
        if followed {
            var st = stat()
            let size = fstat(fd, &st) == 0 ? UInt64(st.st_size) : 0
            UnsyncedWrites.note(.opened(path, size: size, created: !existed))
        }
    }

    /// Notes the file's size (or `length`, where its content ends before space reserved
    /// after it) as durable, for `UnsyncedWrites`.
    private func noteSynced(length: UInt64? = nil) {
        guard followed, let size = length ?? (try? size()) else { return }
        UnsyncedWrites.note(.synced(path, size: size))
    }

    /// For `UnsyncedWrites`: the file's content ends at `length` (reserved zeros may follow),
    /// all of it durable, as opening takes what it finds to be. Without this a write into
    /// the reserved space would not be cut by a crash.
    func noteContentEnd(_ length: UInt64) { noteSynced(length: length) }

    static func openForReading(_ path: String) throws -> File { try File(path: path, flags: O_RDONLY) }

    deinit { if fd >= 0 { _ = Glibc_close(fd) } }

    var isOpen: Bool { fd >= 0 }

    func close() {
        if fd >= 0 { _ = Glibc_close(fd) }
        fd = -1
    }

    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError(.io, file: path, offset: offset + UInt64(done), "read failed: \(errnoText())")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        if n < count { out.removeLast(count - n) }
        return out
    }

    /// The whole file.
    func readAll() throws -> [UInt8] {
        try read(at: 0, count: Int(try size()))
    }

    func write(at offset: UInt64, _ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError(.io, file: path, offset: offset + UInt64(done), "write failed: \(errnoText())")
            }
            done += n
        }
    }

    func write(at offset: UInt64, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(at: offset, $0) }
    }

    func size() throws -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StorageError(.io, file: path, "fstat failed: \(errnoText())") }
        return UInt64(st.st_size)
    }

    func truncate(to size: UInt64) throws {
        var r: Int32
        repeat { r = ftruncate(fd, off_t(size)) } while r < 0 && errno == EINTR
        guard r == 0 else { throw StorageError(.io, file: path, offset: size, "truncate failed: \(errnoText())") }
        if followed { UnsyncedWrites.note(.truncated(path, size: size)) }
    }

    /// fsync: data and metadata.
    func sync() throws {
        if UnsyncedWrites.isActive {
            defer { noteSynced() }
            if UnsyncedWrites.skipsSync(path) { return }
        }
        var r: Int32
        repeat { r = fsync(fd) } while r < 0 && errno == EINTR
        guard r == 0 else { throw StorageError(.io, file: path, "fsync failed: \(errnoText())") }
    }

    /// Allocates the bytes from `offset` to `end` as zeros (the file's size becomes at least
    /// `end`), so that writes there later change no metadata a sync must write. False, with
    /// nothing changed, where the file system cannot (the caller writes past the end then).
    func reserve(from offset: UInt64, to end: UInt64) throws -> Bool {
        guard end > offset else { return true }
        // posix_fallocate returns the error (it sets no errno); where the file system has no
        // fallocate, glibc writes the zeros itself.
        var r: Int32
        repeat { r = posix_fallocate(fd, off_t(offset), off_t(end - offset)) } while r == EINTR
        if r == 0 { return true }
        if r == EOPNOTSUPP || r == ENOSYS || r == EINVAL { return false }
        throw StorageError(.io, file: path, offset: offset, "posix_fallocate of \(end - offset) bytes failed: \(errnoText(r))")
    }

    /// fdatasync where there is one: data, and the metadata needed to read it (the size).
    /// `length`: where the file's content ends, when space reserved after it (zeros) follows;
    /// what `UnsyncedWrites` keeps of the file after a crash.
    func dataSync(length: UInt64? = nil) throws {
        if UnsyncedWrites.isActive {
            defer { noteSynced(length: length) }
            if UnsyncedWrites.skipsSync(path) { return }
        }
        #if os(Linux)
        var r: Int32
        repeat { r = fdatasync(fd) } while r < 0 && errno == EINTR
        guard r == 0 else { throw StorageError(.io, file: path, "fdatasync failed: \(errnoText())") }
        #else
        try sync()
        #endif
    }
}

private func Glibc_close(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.close(fd)
    #elseif canImport(Musl)
    Musl.close(fd)
    #else
    Darwin.close(fd)
    #endif
}

/// Paths and whole-file operations.
enum FileSystem {
    static func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    static func directoryOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func baseName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// `mkdir -p`, each created directory made durable in its parent.
    static func createDirectory(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw StorageError(.io, file: path, "exists and is not a directory")
            }
            return
        }
        let parent = directoryOf(path)
        if parent != path && parent != "." && parent != "/" { try createDirectory(parent) }
        if mkdir(path, 0o755) != 0 {
            if errno == EEXIST { return }
            throw StorageError(.io, file: path, "cannot create directory: \(errnoText())")
        }
        // The new directory's entry must be durable too, or a power loss can take it and
        // everything later synced inside it.
        try syncDirectory(parent)
    }

    /// fsync a directory, so that creations, renames and removals in it are durable.
    static func syncDirectory(_ path: String) throws {
        if UnsyncedWrites.isActive, UnsyncedWrites.skipsSync(path + "/") { return }
        let dir = try File(path: path, flags: O_RDONLY | O_DIRECTORY)
        try dir.sync()
    }

    /// Names in a directory (not `.` and `..`), sorted.
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw StorageError(.io, file: path, "cannot list directory: \(errnoText())")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a file; a missing file is not an error.
    static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT {
            throw StorageError(.io, file: path, "cannot remove: \(errnoText())")
        }
        UnsyncedWrites.note(.removed(path))
    }

    /// Removes a directory and everything in it (`rm -r`); a missing one is not an error.
    static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in try list(path) { try removeTree(join(path, name)) }
            if rmdir(path) != 0 && errno != ENOENT {
                throw StorageError(.io, file: path, "cannot remove directory: \(errnoText())")
            }
        } else {
            try remove(path)
        }
    }

    static func rename(_ from: String, _ to: String) throws {
        if Glibc_rename(from, to) != 0 {
            throw StorageError(.io, file: from, "cannot rename to \(to): \(errnoText())")
        }
        UnsyncedWrites.note(.renamed(from, to: to))
    }

    /// The file's bytes, or nil when it does not exist.
    static func readFile(_ path: String) throws -> [UInt8]? {
        guard exists(path) else { return nil }
        return try File.openForReading(path).readAll()
    }

    /// Replaces `path` with `bytes` so that a crash leaves either the old or the new
    /// content: write a temporary file, fsync it, rename it over `path`, fsync the directory.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let tmp = path + ".tmp"
        let file = try File(path: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC)
        try file.write(at: 0, bytes)
        try file.sync()
        file.close()
        try rename(tmp, path)
        try syncDirectory(directoryOf(path))
    }
}

private func Glibc_rename(_ from: String, _ to: String) -> Int32 {
    #if canImport(Glibc)
    Glibc.rename(from, to)
    #elseif canImport(Musl)
    Musl.rename(from, to)
    #else
    Darwin.rename(from, to)
    #endif
}

/// A number as 20 decimal digits (`%020llu`), so that file names sort as numbers.
func zeroPadded(_ n: UInt64) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, 20 - s.count)) + s
}

/// 16 random hex digits, for temporary file names.
func uniqueSuffix() -> String {
    UInt64.random(in: .min ... .max).hex16
}
