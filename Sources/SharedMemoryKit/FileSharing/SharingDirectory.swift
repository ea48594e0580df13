import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// The directory where shared files (and lock files) are made, and why it was chosen.
///
/// ``choose(environment:)`` tries, in order: `$XDG_RUNTIME_DIR` (per-user, mode 0700, normally tmpfs),
/// `/dev/shm` (tmpfs, shared by all users), and the temporary directory (`$TMPDIR`, else `/tmp`). The first
/// usable directory wins; ``reason`` says why, in words, including why earlier candidates were skipped.
/// ``warnings`` lists what a careful caller should know: the directory is on a disk, or others can write in it.
///
///     let directory = try SharingDirectory.choose()
///     print(directory.reason)
///     // XDG_RUNTIME_DIR is not set; chose /dev/shm (the shared-memory directory): tmpfs (memory-backed),
///     // writable by every user (sticky)
public struct SharingDirectory: Sendable, CustomStringConvertible {
    /// Which rule picked the directory.
    public enum Source: String, Sendable {
        case explicit = "given by the caller"
        case runtimeDirectory = "XDG_RUNTIME_DIR"
        case devShm = "the shared-memory directory"
        case temporaryDirectory = "the temporary directory"
    }

    /// Something about the chosen directory that a caller may want to refuse or report.
    public enum Warning: Hashable, Sendable, CustomStringConvertible {
        /// Not memory-backed: dirty pages are written to the disk (I/O, data left on the disk).
        case diskBacked(path: String, fileSystem: FileSystemType)
        /// Other users may create files in it (names can be squatted; `O_EXCL` and the owner check refuse
        /// their files). `sticky`: they cannot remove or rename ours.
        case worldWritable(path: String, sticky: Bool)

        public var description: String {
            switch self {
            case .diskBacked(let path, let type): "\(path) is on \(type), not in memory: shared pages go to the disk"
            case .worldWritable(let path, let sticky):
                "\(path) is writable by every user" + (sticky ? " (sticky: they cannot remove our files)" : " and not sticky")
            }
        }
    }

    public let path: String
    public let source: Source
    public let fileSystem: FileSystemType
    /// Why this directory: the rule, its file system, and why earlier candidates were skipped.
    public let reason: String
    public let warnings: [Warning]

    public var description: String { "\(path) (\(reason))" }

    /// A directory the caller chose; checked and described like the automatic choice.
    ///
    /// - Throws: `notFound` when it is not a directory, `permissionDenied` when this process cannot create
    ///   files in it.
    public init(path: String) throws(SharedMemoryError) {
        switch Self.examine(path) {
        case .success(let facts): self.init(path: path, source: .explicit, facts: facts, skipped: [])
        case .failure(let refusal): throw refusal
        }
    }

    private init(path: String, source: Source, facts: Facts, skipped: [String]) {
        self.path = path
        self.source = source
        fileSystem = facts.fileSystem
        var warnings: [Warning] = []
        if !facts.fileSystem.isMemoryBacked { warnings.append(.diskBacked(path: path, fileSystem: facts.fileSystem)) }
        if facts.worldWritable { warnings.append(.worldWritable(path: path, sticky: facts.sticky)) }
        self.warnings = warnings
        var words = "chose \(path) (\(source.rawValue)): \(facts.fileSystem)"
        words += facts.fileSystem.isMemoryBacked ? " (memory-backed)" : " (disk-backed)"
        if facts.worldWritable { words += facts.sticky ? ", writable by every user (sticky)" : ", writable by every user" }
        else if facts.privateToOwner { words += ", private to its owner" }
        reason = (skipped + [words]).joined(separator: "; ")
    }

    /// Picks the directory for sharing: `$XDG_RUNTIME_DIR`, `/dev/shm`, then the temporary directory.
    ///
    /// - Parameter environment: Values of `XDG_RUNTIME_DIR` and `TMPDIR` to use; nil reads the process's.
    /// - Throws: `notFound` when no candidate is usable, with every candidate's reason.
    ///
    /// The corresponding C functions are `getenv`, `stat`, `statfs` and `access`.
    public static func choose(environment: [String: String]? = nil) throws(SharedMemoryError) -> SharingDirectory {
        func variable(_ name: String) -> String? {
            if let environment { return environment[name] }
            guard let value = getenv(name) else { return nil }
            return String(cString: value)
        }
        var skipped: [String] = []
        if let runtime = variable("XDG_RUNTIME_DIR"), !runtime.isEmpty {
            switch examine(runtime) {
            case .success(let facts) where facts.ownedByMe && facts.privateToOwner:
                return SharingDirectory(path: runtime, source: .runtimeDirectory, facts: facts, skipped: skipped)
            case .success:
                skipped.append("XDG_RUNTIME_DIR \(runtime) is not private to this user (owner and mode 0700 expected)")
            case .failure(let refusal):
                skipped.append("XDG_RUNTIME_DIR \(runtime) is unusable (\(refusal.detail ?? refusal.code.name))")
            }
        } else {
            skipped.append("XDG_RUNTIME_DIR is not set")
        }
        switch examine("/dev/shm") {
        case .success(let facts) where facts.fileSystem.isMemoryBacked:
            return SharingDirectory(path: "/dev/shm", source: .devShm, facts: facts, skipped: skipped)
        case .success(let facts): skipped.append("/dev/shm is on \(facts.fileSystem), not tmpfs")
        case .failure(let refusal): skipped.append("/dev/shm is unusable (\(refusal.detail ?? refusal.code.name))")
        }
        let temporary = variable("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        switch examine(temporary) {
        case .success(let facts):
            return SharingDirectory(path: temporary, source: .temporaryDirectory, facts: facts, skipped: skipped)
        case .failure(let refusal):
            skipped.append("\(temporary) is unusable (\(refusal.detail ?? refusal.code.name))")
        }
        throw CallSite(operation: "choose sharing directory").refusal(
            .notFound, "no usable directory: " + skipped.joined(separator: "; "))
    }

    struct Facts {
        var fileSystem: FileSystemType
        var ownedByMe: Bool
        var privateToOwner: Bool
        var worldWritable: Bool
        var sticky: Bool
    }

    static func examine(_ path: String) -> Result<Facts, SharedMemoryError> {
        let site = CallSite(operation: "examine directory", object: path)
        let status: Stat
        switch Result(catching: { () throws(Errno) in try FilePath(path).stat() }) {
        case .success(let value): status = value
        case .failure(let err): return .failure(site.error("stat", err))
        }
        guard status.type == .directory else { return .failure(site.refusal(.notFound, "not a directory")) }
        if access(path, W_OK | X_OK) != 0 {
            return .failure(site.refusal(.permissionDenied, "this process cannot create files in it"))
        }
        let fileSystem: FileSystemType
        do throws(SharedMemoryError) {
            fileSystem = try FileSystemType.of(path: path)
        } catch {
            return .failure(error)
        }
        let mode = status.permissions
        return .success(
            Facts(
                fileSystem: fileSystem, ownedByMe: status.userID.rawValue == geteuid(),
                privateToOwner: mode.isDisjoint(with: [.groupReadWriteExecute, .otherReadWriteExecute]),
                worldWritable: mode.contains(.otherWrite), sticky: mode.contains(.saveText)))
    }
}
