import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A regular file opened for mapping: Qt's `QFile::map` way of sharing memory, done safely.
///
/// Files are opened with `O_NOFOLLOW` (a symlink is refused), created with `O_EXCL` and mode 0600, must be
/// regular files, and a file another user owns is refused unless the caller opts in. Every mapping checks
/// the file's size first. Map it ``FileMapping/Sharing/shared`` (every process that maps the file sees the
/// writes) or ``FileMapping/Sharing/private`` (copy-on-write).
///
///     let file = try MappedFile.create(at: dir.path + "/board", size: 4096)
///     let mapping = try file.map()
///     try mapping.write(Array("hello".utf8), at: 64)
///     try mapping.sync()          // for disk-backed files
public final class MappedFile {
    /// The file's path, or nil once it was unlinked (a temporary file handed on by descriptor).
    public private(set) var path: String?
    /// Where the file was made or opened, for messages (kept after unlinking).
    public let name: String
    /// Whether this object removes the path when it is closed.
    public let removesOnClose: Bool
    private var file: ObjectFile?

    private init(file: ObjectFile, path: String?, removesOnClose: Bool) {
        self.file = file
        self.path = path
        name = file.path
        self.removesOnClose = removesOnClose
    }

    deinit { close() }

    /// Creates a new file of `size` zero bytes (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600).
    ///
    /// - Throws: `alreadyExists` when anything is at `path` (a symlink included).
    ///
    /// The corresponding C functions are `open` and `ftruncate`.
    public static func create(at path: String, size: Int) throws(SharedMemoryError) -> MappedFile {
        let site = CallSite(operation: "create", object: path)
        let file = try ObjectFile.createExclusive(path, mode: 0o600, site: site)
        let made = MappedFile(file: file, path: path, removesOnClose: false)
        do throws(SharedMemoryError) {
            try made.resize(to: size)
        } catch {
            made.close()
            unlink(path)
            throw error.during("create")
        }
        return made
    }

    /// Opens an existing regular file without following a symlink.
    ///
    /// - Parameters:
    ///   - allowForeignOwner: Use a file another user owns. Off by default: such a file is `permissionDenied`.
    /// - Throws: `permissionDenied` for a symlink or a foreign file, `notFound`, `keyError` for a non-regular
    ///   file. If the caller may not write the file it is opened read-only (map it read-only or private).
    ///
    /// The corresponding C functions are `open` (`O_NOFOLLOW | O_CLOEXEC`) and `fstat`.
    public static func open(at path: String, allowForeignOwner: Bool = false) throws(SharedMemoryError) -> MappedFile {
        let file = try ObjectFile.openExisting(
            path, allowForeignOwner: allowForeignOwner, site: CallSite(operation: "open", object: path))
        return MappedFile(file: file, path: path, removesOnClose: false)
    }

    /// Creates a uniquely named temporary file of `size` zero bytes in `directory`.
    ///
    /// - Parameters:
    ///   - directory: Usually ``SharingDirectory/path``.
    ///   - prefix: The start of the file's name (a random suffix follows).
    ///   - keepName: false (the default): the file is unlinked at once and lives only as long as a descriptor
    ///     or mapping of it does, so even a crash of every user leaves nothing behind; hand it on by
    ///     descriptor (``DescriptorPassing``, ``UnixSocket``). true: other processes can open it by ``path``;
    ///     it is removed at ``close()``, but a crash before that leaves it behind.
    ///
    /// The corresponding C functions are `getrandom`, `open` (`O_EXCL`, 0600), `ftruncate` and `unlink`.
    public static func temporary(
        in directory: String, prefix: String = "shm-harness", size: Int, keepName: Bool = false
    ) throws(SharedMemoryError) -> MappedFile {
        let site = CallSite(operation: "create temporary", object: directory)
        var attempts = 0
        while true {
            attempts += 1
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let path = directory + "/" + prefix + "." + suffix
            let file: ObjectFile
            do throws(SharedMemoryError) {
                file = try ObjectFile.createExclusive(path, mode: 0o600, site: site)
            } catch where error.underlyingError == .fileExists && attempts < 16 {
                continue
            }
            if !keepName { unlink(path) }
            let made = MappedFile(file: file, path: keepName ? path : nil, removesOnClose: keepName)
            do throws(SharedMemoryError) {
                try made.resize(to: size)
            } catch {
                made.close()
                throw error.during("create temporary")
            }
            return made
        }
    }

    /// The open descriptor (close-on-exec), or nil after ``close()``.
    public var descriptor: FileDescriptor? { file?.fd }

    /// The file's current size in bytes.
    ///
    /// The corresponding C function is `fstat`.
    public func size() throws(SharedMemoryError) -> Int {
        let file = try openFile("stat")
        switch Result(catching: { () throws(Errno) in try file.fd.stat() }) {
        case .success(let status): return Int(status.size)
        case .failure(let err): throw CallSite(operation: "stat", object: name).error("fstat", err)
        }
    }

    /// Sets the file's size; new bytes read as zero. Shrinking a file that others map makes their next
    /// touch of the lost pages a `SIGBUS` (``FileMapping/read(at:count:)`` turns it into `busError`).
    ///
    /// The corresponding C function is `ftruncate`.
    public func resize(to size: Int) throws(SharedMemoryError) {
        let site = CallSite(operation: "resize", object: name)
        guard size >= 0 else { throw site.refusal(.invalidSize, "size \(size) is negative") }
        let file = try openFile("resize")
        _ = try site.check("ftruncate", einval: .invalidSize, detail: "\(size) bytes") {
            ftruncate(file.fd.rawValue, off_t(size))
        }
    }

    /// Maps the file, after checking that it holds the range.
    ///
    /// - Parameters:
    ///   - sharing: ``FileMapping/Sharing/shared`` (the default) or ``FileMapping/Sharing/private``.
    ///   - writable: Map with `PROT_WRITE`.
    ///   - offset: Where to start; a multiple of the page size.
    ///   - length: How many bytes; nil maps to the end of the file.
    ///
    /// The corresponding C function is `mmap`.
    public func map(
        _ sharing: FileMapping.Sharing = .shared, writable: Bool = true, offset: Int = 0, length: Int? = nil
    ) throws(SharedMemoryError) -> FileMapping {
        let file = try openFile("map")
        return try FileMapping(
            descriptor: file.fd, offset: offset, length: length, sharing: sharing, writable: writable, object: name)
    }

    /// Closes the descriptor (mappings stay valid) and, for a temporary file made with `keepName`, removes
    /// the path if it still names this file.
    ///
    /// The corresponding C functions are `close` and `unlink`.
    public func close() {
        guard let file else { return }
        if removesOnClose { file.unlinkIfStillAtPath() }
        self.file = nil
        path = removesOnClose ? nil : path
    }

    private func openFile(_ operation: String) throws(SharedMemoryError) -> ObjectFile {
        guard let file else { throw CallSite(operation: operation, object: name).refusal(.notFound, "the file was closed") }
        return file
    }
}
