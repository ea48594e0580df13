import CShmShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// A part of a file mapped into this process: a ``MappedFile``, a ``MemFD``, or any descriptor.
///
/// The mapping exposes its base address and length (``bytes``), so the in-memory locks (``FutexLock``,
/// ``RobustMutex``) can live in it at any offset. Plain access through ``bytes`` is fast but dies with
/// `SIGBUS` if another process shrinks the file underneath; ``read(at:count:)`` and ``write(_:at:)`` check the
/// file's size first and guard the copy itself, so a shrink becomes ``SharedMemoryError/Code/busError``
/// (see ``BusGuard``). A ``MemFD`` sealed with ``MemFD/Seals/shrink`` cannot shrink: its memory needs no guard.
///
/// The mapping keeps a duplicate of the file's descriptor (close-on-exec) to read the file's size; both go
/// at ``unmap()`` or when the object is released.
public final class FileMapping {
    /// Whether writes reach the file and every other mapping of it.
    public enum Sharing: Sendable, Hashable {
        /// `MAP_SHARED`: writes are seen by every process that maps the file, and reach the file.
        case shared
        /// `MAP_PRIVATE`: copy-on-write; writes stay in this mapping.
        case `private`
    }

    /// The first mapped byte.
    public let baseAddress: UnsafeMutableRawPointer
    /// The mapped length in bytes.
    public let count: Int
    /// Where the mapping starts in the file.
    public let fileOffset: Int
    public let sharing: Sharing
    public let isWritable: Bool
    /// What is mapped (a path or a memfd name), for messages.
    public let object: String
    private var sizeSource: FileDescriptor?
    public private(set) var isMapped = true

    /// The mapped memory. Valid until ``unmap()``.
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: baseAddress, count: count) }

    /// Maps `length` bytes of `descriptor` from `offset`, after checking that the file holds them.
    ///
    /// - Parameters:
    ///   - descriptor: An open file; it is duplicated, the caller keeps its own.
    ///   - offset: Where to start in the file; a multiple of the page size.
    ///   - length: How many bytes; nil maps from `offset` to the end of the file.
    ///   - sharing: ``Sharing/shared`` or ``Sharing/private``.
    ///   - writable: Map with `PROT_WRITE` (a private mapping of a read-only descriptor may be writable).
    ///   - object: A name for messages.
    /// - Throws: `invalidSize` when the range is empty, unaligned or past the end of the file; the mapped
    ///   errno otherwise (`sealed` when a seal refuses a writable shared mapping).
    ///
    /// The corresponding C functions are `fstat`, `fcntl(F_DUPFD_CLOEXEC)` and `mmap`.
    public init(
        descriptor: FileDescriptor, offset: Int = 0, length: Int? = nil, sharing: Sharing = .shared,
        writable: Bool = true, object: String
    ) throws(SharedMemoryError) {
        let site = CallSite(operation: "map", object: object)
        let fileSize: Int
        switch Result(catching: { () throws(Errno) in try descriptor.stat() }) {
        case .success(let status): fileSize = Int(status.size)
        case .failure(let err): throw site.error("fstat", err)
        }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard offset >= 0, offset % page == 0 else {
            throw site.refusal(.invalidSize, "offset \(offset) is not a multiple of the page size \(page)")
        }
        let wanted = length ?? (fileSize - offset)
        guard wanted > 0 else {
            throw site.refusal(.invalidSize, "nothing to map: the file is \(fileSize) bytes, offset \(offset)")
        }
        guard offset + wanted <= fileSize else {
            throw site.refusal(
                .invalidSize, "bytes \(offset)..<\(offset + wanted) are past the end of the file (\(fileSize) bytes)")
        }
        let duplicate = try site.check("fcntl(F_DUPFD_CLOEXEC)") { fcntl(descriptor.rawValue, F_DUPFD_CLOEXEC, 3) }
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        let flags = sharing == .shared ? MAP_SHARED : MAP_PRIVATE
        let result = pointerOrErrno { () -> UnsafeMutableRawPointer? in
            let pointer = mmap(nil, wanted, protection, flags, descriptor.rawValue, off_t(offset))
            return pointer == UnsafeMutableRawPointer(bitPattern: -1) ? nil : pointer
        }
        switch result {
        case .success(let pointer): baseAddress = pointer
        case .failure(let err):
            close(duplicate)
            throw site.error("mmap", err, refinement: .sealable, detail: "\(object), \(wanted) bytes at \(offset)")
        }
        count = wanted
        fileOffset = offset
        self.sharing = sharing
        isWritable = writable
        self.object = object
        sizeSource = FileDescriptor(rawValue: duplicate)
    }

    deinit { try? unmap() }

    /// Writes the mapping's dirty pages to the file and waits (`MS_SYNC`); for disk-backed files.
    ///
    /// - Parameter invalidate: Also `MS_INVALIDATE`: drop other mappings' cached copies.
    ///
    /// The corresponding C function is `msync`.
    public func sync(invalidate: Bool = false) throws(SharedMemoryError) {
        let site = CallSite(operation: "sync", object: object)
        guard isMapped else { throw site.refusal(.notFound, "the mapping was unmapped") }
        let flags = MS_SYNC | (invalidate ? MS_INVALIDATE : 0)
        _ = try site.check("msync", detail: "\(count) bytes") { msync(baseAddress, count, flags) }
    }

    /// Unmaps the memory and closes the mapping's descriptor. Pointers into ``bytes`` are invalid afterwards.
    ///
    /// The corresponding C function is `munmap`.
    public func unmap() throws(SharedMemoryError) {
        guard isMapped else { return }
        isMapped = false
        if let sizeSource {
            try? sizeSource.close()
            self.sizeSource = nil
        }
        let site = CallSite(operation: "unmap", object: object)
        _ = try site.check("munmap") { munmap(baseAddress, count) }
    }

    /// The current size of the mapped file (it may have shrunk or grown since the mapping was made).
    ///
    /// The corresponding C function is `fstat`.
    public func currentFileSize() throws(SharedMemoryError) -> Int {
        let site = CallSite(operation: "stat", object: object)
        guard let sizeSource else { throw site.refusal(.notFound, "the mapping was unmapped") }
        switch Result(catching: { () throws(Errno) in try sizeSource.stat() }) {
        case .success(let status): return Int(status.size)
        case .failure(let err): throw site.error("fstat", err)
        }
    }
}
