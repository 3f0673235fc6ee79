/// What a node keeps instead of deleting, so that a checker can see a run's whole history
/// (SPEC section 3): a data dir holding an `archive/` directory moves the log segments its
/// compactions free into `archive/log/` and the snapshot files newer ones supersede into
/// `archive/snapshot/`, under their own names, instead of deleting them. Segments a
/// truncation cuts (a conflicting suffix, or a log a snapshot replaces) are not kept: they
/// are not the committed history.
///
/// `NodeStorage(directory:keepArchive:)` creates `archive/` when asked to keep, and deletes
/// it otherwise (a node started by hand keeps nothing), so the directory's presence is the
/// policy the stores follow, on every thread that retires a file.
enum Archive {
    static let directoryName = "archive"

    /// `DIR/archive/log` for the store `DIR/log`; nil when DIR has no archive.
    static func directory(for storeDirectory: String) -> String? {
        let dataDir = FileSystem.directoryOf(storeDirectory)
        let archive = FileSystem.join(dataDir, directoryName)
        guard FileSystem.exists(archive) else { return nil }
        return FileSystem.join(archive, FileSystem.baseName(storeDirectory))
    }

    /// Moves `path`, a file of the store in `storeDirectory`, into that store's archive when
    /// the data dir keeps one, or deletes it. The caller syncs `storeDirectory` after (the
    /// archive's directory is synced here).
    static func retire(_ path: String, from storeDirectory: String) throws {
        guard let archive = directory(for: storeDirectory) else {
            try FileSystem.remove(path)
            return
        }
        try FileSystem.createDirectory(archive)
        try FileSystem.rename(path, FileSystem.join(archive, FileSystem.baseName(path)))
        try FileSystem.syncDirectory(archive)
    }

    /// Creates `DIR/archive` (keep) or removes it with everything in it (do not keep).
    static func prepare(dataDirectory: String, keep: Bool) throws {
        let archive = FileSystem.join(dataDirectory, directoryName)
        if keep {
            try FileSystem.createDirectory(archive)
        } else if FileSystem.exists(archive) {
            try FileSystem.removeTree(archive)
            try FileSystem.syncDirectory(dataDirectory)
        }
    }
}
