import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// An anonymous memory file (`memfd_create`): shared memory with no name in any file system, handed to
/// other processes by descriptor only, and optionally sealed so that a receiver can trust it.
///
///     let memfd = try MemFD.create(name: "frame", size: 1 << 20)
///     let mapping = try memfd.map()
///     // ... fill it, then drop write access for everyone and forbid resizing:
///     try mapping.unmap()
///     try memfd.addSeals([.shrink, .grow, .write, .seal])
///
/// A receiver (``UnixSocket/receiveDescriptor(maxMessage:)``) wraps the descriptor with
/// ``init(adopting:name:)`` and checks ``seals()`` (or ``requireSeals(_:)``) before using the memory. Memory
/// of a memfd sealed with ``Seals/shrink`` can be read through ``FileMapping/bytes`` without ``BusGuard``:
/// nobody can shrink it.
public final class MemFD {
    /// File seals (`F_SEAL_*`): each forbids one kind of change, for every descriptor and process, forever.
    public struct Seals: OptionSet, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// No more seals may be added. The C seal is `F_SEAL_SEAL`.
        public static var seal: Seals { Seals(rawValue: SHM_SHIM_F_SEAL_SEAL) }
        /// The file may not shrink. The C seal is `F_SEAL_SHRINK`.
        public static var shrink: Seals { Seals(rawValue: SHM_SHIM_F_SEAL_SHRINK) }
        /// The file may not grow. The C seal is `F_SEAL_GROW`.
        public static var grow: Seals { Seals(rawValue: SHM_SHIM_F_SEAL_GROW) }
        /// The contents may not change (`write`, writable shared mappings, hole punching); resizing is still
        /// allowed unless sealed separately. Refused while a writable shared mapping exists. The C seal is
        /// `F_SEAL_WRITE`.
        public static var write: Seals { Seals(rawValue: SHM_SHIM_F_SEAL_WRITE) }
        /// No new writable access; writable shared mappings made before the seal keep working (a producer
        /// keeps writing, receivers only read). The C seal is `F_SEAL_FUTURE_WRITE`.
        public static var futureWrite: Seals { Seals(rawValue: SHM_SHIM_F_SEAL_FUTURE_WRITE) }
        /// The mode's execute bits may not change. The C seal is `F_SEAL_EXEC`.
        public static var exec: Seals { Seals(rawValue: SHM_SHIM_F_SEAL_EXEC) }

        @available(*, unavailable, renamed: "seal") public static var F_SEAL_SEAL: Seals { seal }
        @available(*, unavailable, renamed: "shrink") public static var F_SEAL_SHRINK: Seals { shrink }
        @available(*, unavailable, renamed: "grow") public static var F_SEAL_GROW: Seals { grow }
        @available(*, unavailable, renamed: "write") public static var F_SEAL_WRITE: Seals { write }
        @available(*, unavailable, renamed: "futureWrite") public static var F_SEAL_FUTURE_WRITE: Seals { futureWrite }

        static let named: [(Seals, String)] = [
            (.seal, "seal"), (.shrink, "shrink"), (.grow, "grow"), (.write, "write"),
            (.futureWrite, "future-write"), (.exec, "exec"),
        ]

        /// The seals as a comma-separated list (`shrink,grow`), `none` when empty.
        public var description: String {
            var names = Self.named.filter { contains($0.0) }.map(\.1)
            let unknown = rawValue & ~Self.named.reduce(0) { $0 | $1.0.rawValue }
            if unknown != 0 { names.append("0x" + String(unknown, radix: 16)) }
            return names.isEmpty ? "none" : names.joined(separator: ",")
        }

        /// Parses ``description``'s form.
        public init?(names: String) {
            var value: UInt32 = 0
            for part in names.split(separator: ",") where part != "none" {
                guard let match = Self.named.first(where: { $0.1 == part }) else { return nil }
                value |= match.0.rawValue
            }
            rawValue = value
        }
    }

    /// The name given at creation (shown as `/memfd:NAME` in /proc); not unique, not a path.
    public let name: String
    private var fd: FileDescriptor?

    private init(fd: FileDescriptor, name: String) {
        self.fd = fd
        self.name = name
    }

    deinit { close() }

    /// Creates a memfd of `size` zero bytes, close-on-exec.
    ///
    /// - Parameters:
    ///   - name: A label for /proc and messages (at most 249 bytes).
    ///   - allowSealing: `MFD_ALLOW_SEALING`. Without it the memfd carries ``Seals/seal`` from the start.
    ///
    /// The corresponding C functions are `memfd_create` and `ftruncate`.
    public static func create(name: String, size: Int = 0, allowSealing: Bool = true) throws(SharedMemoryError) -> MemFD {
        let site = CallSite(operation: "create", object: "memfd:" + name)
        let flags = SHM_SHIM_MFD_CLOEXEC | (allowSealing ? SHM_SHIM_MFD_ALLOW_SEALING : 0)
        let raw = try site.check("memfd_create", einval: .keyError, detail: name) { shm_shim_memfd_create(name, flags) }
        let memfd = MemFD(fd: FileDescriptor(rawValue: raw), name: name)
        if size > 0 { try memfd.resize(to: size) }
        return memfd
    }

    /// Takes ownership of a descriptor that should be a memfd (one received over a socket or inherited).
    ///
    /// - Throws: `keyError` when the descriptor is not a memfd (not on tmpfs, no seals to read, or a
    ///   file with a name, e.g. in /dev/shm); the descriptor is then left open for the caller.
    ///
    /// The corresponding C functions are `fstatfs`, `fcntl(F_GET_SEALS)` and `readlink` (/proc/self/fd).
    public convenience init(adopting descriptor: FileDescriptor, name: String = "received") throws(SharedMemoryError) {
        let site = CallSite(operation: "adopt", object: "memfd:" + name)
        var type: UInt64 = 0
        _ = try site.check("fstatfs", detail: "fd \(descriptor.rawValue)") { shm_shim_fstatfs_type(descriptor.rawValue, &type) }
        guard FileSystemType(magic: type).isMemoryBacked else {
            throw site.refusal(.keyError, "fd \(descriptor.rawValue) is on \(FileSystemType(magic: type)), not a memfd")
        }
        _ = try site.check("fcntl(F_GET_SEALS)", einval: .keyError, detail: "fd \(descriptor.rawValue) is not a memfd") {
            shm_shim_get_seals(descriptor.rawValue)
        }
        // A file in /dev/shm is tmpfs too; only a memfd's /proc link reads "/memfd:NAME (deleted)".
        var link = [CChar](repeating: 0, count: 512)
        let length = try site.check("readlink", detail: "/proc/self/fd/\(descriptor.rawValue)") {
            readlink("/proc/self/fd/\(descriptor.rawValue)", &link, link.count - 1)
        }
        let target = String(decoding: link.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard target.hasPrefix("/memfd:") else {
            throw site.refusal(.keyError, "fd \(descriptor.rawValue) is \(target), not a memfd")
        }
        self.init(fd: descriptor, name: name)
    }

    /// The descriptor (close-on-exec), or nil after ``close()``.
    public var descriptor: FileDescriptor? { fd }

    /// The memfd's size in bytes.
    ///
    /// The corresponding C function is `fstat`.
    public func size() throws(SharedMemoryError) -> Int {
        let fd = try open("stat")
        switch Result(catching: { () throws(Errno) in try fd.stat() }) {
        case .success(let status): return Int(status.size)
        case .failure(let err): throw site("stat").error("fstat", err)
        }
    }

    /// Sets the size. - Throws: `sealed` when ``Seals/shrink`` or ``Seals/grow`` forbids it.
    ///
    /// The corresponding C function is `ftruncate`.
    public func resize(to size: Int) throws(SharedMemoryError) {
        let fd = try open("resize")
        _ = try site("resize").check("ftruncate", refinement: .sealable, detail: "\(size) bytes") {
            ftruncate(fd.rawValue, off_t(size))
        }
    }

    /// Allocates `length` bytes at `offset` (growing the file if needed), or punches a hole there.
    /// - Throws: `sealed` when a seal forbids it (growth under ``Seals/grow``, a hole under ``Seals/write``).
    ///
    /// The corresponding C function is `fallocate` (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` for holes).
    public func allocate(offset: Int = 0, length: Int, punchHole: Bool = false) throws(SharedMemoryError) {
        let fd = try open("allocate")
        _ = try site("allocate").check("fallocate", refinement: .sealable, detail: "\(length) bytes at \(offset)") {
            shm_shim_fallocate(fd.rawValue, punchHole ? SHM_SHIM_FALLOC_PUNCH_HOLE : 0, Int64(offset), Int64(length))
        }
    }

    /// Writes `bytes` at `offset` with `pwrite` (growing the file when writing past its end).
    /// - Throws: `sealed` under ``Seals/write``, ``Seals/futureWrite``, or ``Seals/grow`` past the end.
    ///
    /// The corresponding C function is `pwrite`.
    public func write(_ bytes: [UInt8], at offset: Int) throws(SharedMemoryError) {
        let fd = try open("write")
        var done = 0
        while done < bytes.count {
            let n = try site("write").check("pwrite", refinement: .sealable, detail: "\(bytes.count) bytes at \(offset)") {
                bytes.withUnsafeBytes { pwrite(fd.rawValue, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            }
            done += n
        }
    }

    /// Reads up to `count` bytes at `offset` with `pread` (fewer at the end of the file).
    ///
    /// The corresponding C function is `pread`.
    public func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] {
        let fd = try open("read")
        var result = [UInt8](repeating: 0, count: count)
        let n = try site("read").check("pread", detail: "\(count) bytes at \(offset)") {
            result.withUnsafeMutableBytes { pread(fd.rawValue, $0.baseAddress, $0.count, off_t(offset)) }
        }
        return Array(result.prefix(n))
    }

    /// The seals in force.
    ///
    /// The corresponding C function is `fcntl(F_GET_SEALS)`.
    public func seals() throws(SharedMemoryError) -> Seals {
        let fd = try open("seals")
        let raw = try site("seals").check("fcntl(F_GET_SEALS)") { shm_shim_get_seals(fd.rawValue) }
        return Seals(rawValue: UInt32(raw))
    }

    /// Adds seals (they can never be removed).
    ///
    /// - Throws: `sealed` when ``Seals/seal`` is in force (or the memfd was created without sealing);
    ///   `busy` when adding ``Seals/write`` while a writable shared mapping exists.
    ///
    /// The corresponding C function is `fcntl(F_ADD_SEALS)`.
    public func addSeals(_ seals: Seals) throws(SharedMemoryError) {
        let fd = try open("seal")
        _ = try site("seal").check("fcntl(F_ADD_SEALS)", refinement: .sealable, detail: seals.description) {
            shm_shim_add_seals(fd.rawValue, seals.rawValue)
        }
    }

    /// Refuses a memfd that lacks any of `required`: what a receiver calls before trusting the memory.
    /// - Throws: `permissionDenied` naming the missing seals.
    public func requireSeals(_ required: Seals) throws(SharedMemoryError) {
        let present = try seals()
        let missing = required.subtracting(present)
        if !missing.isEmpty {
            throw site("check seals").refusal(
                .permissionDenied, "the memfd has seals \(present), lacks \(missing); not trusting its memory")
        }
    }

    /// Maps the memfd (see ``FileMapping``).
    /// - Throws: `sealed` for a writable shared mapping under ``Seals/write`` or ``Seals/futureWrite``.
    ///
    /// The corresponding C function is `mmap`.
    public func map(
        _ sharing: FileMapping.Sharing = .shared, writable: Bool = true, offset: Int = 0, length: Int? = nil
    ) throws(SharedMemoryError) -> FileMapping {
        let fd = try open("map")
        return try FileMapping(
            descriptor: fd, offset: offset, length: length, sharing: sharing, writable: writable,
            object: "memfd:" + name)
    }

    /// Closes the descriptor; the memory lives on while any mapping or other descriptor of it does.
    ///
    /// The corresponding C function is `close`.
    public func close() {
        if let fd { try? fd.close() }
        fd = nil
    }

    private func site(_ operation: String) -> CallSite { CallSite(operation: operation, object: "memfd:" + name) }

    private func open(_ operation: String) throws(SharedMemoryError) -> FileDescriptor {
        guard let fd else { throw site(operation).refusal(.notFound, "the memfd was closed") }
        return fd
    }
}
