import CShmShim

/// Copies to or from mapped file memory without dying when the file is shrunk underneath.
///
/// Touching a page of a `MAP_SHARED` (or `MAP_PRIVATE`) mapping that lies past the end of its file raises
/// `SIGBUS`, which kills the process. The guard installs a `SIGBUS` handler once (`sigaction`, chained to the
/// handler that was there before); a copy runs with a per-thread guard armed, and a fault during the copy
/// jumps back (`siglongjmp`) and becomes ``SharedMemoryError/Code/busError``. A `SIGBUS` outside a guard, or
/// one sent with `kill`, goes to the previous handler (by default the process dies, as without the guard).
///
/// Memory of a ``MemFD`` sealed with ``MemFD/Seals/shrink`` needs no guard: its file cannot shrink.
public enum BusGuard {
    /// Copies `count` bytes from `source` to `destination`; either may be mapped file memory.
    ///
    /// - Throws: `busError` when the copy faulted (some leading bytes may have been copied).
    ///
    /// The corresponding C functions are `sigsetjmp` and `memcpy` (in the shim's `shm_shim_guarded_copy`).
    public static func copy(
        from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int, object: String? = nil
    ) throws(SharedMemoryError) {
        guard count > 0 else { return }
        let site = CallSite(operation: "guarded copy", object: object)
        _ = try site.check("memcpy", refinement: .guardedAccess, detail: "\(count) bytes; SIGBUS during the copy") {
            shm_shim_guarded_copy(destination, source, count)
        }
    }

    /// How many `SIGBUS` signals the guard has turned into errors in this process.
    public static var faultsCaught: UInt64 { shm_shim_guarded_faults() }
}

extension FileMapping {
    /// Reads `count` bytes at `offset` (from the start of the mapping), safely against a shrinking file.
    ///
    /// The file's size is checked first (`fstat`): bytes that are no longer backed are `busError` without a
    /// fault. The copy itself is guarded (``BusGuard``), so a shrink that races with it is `busError` too.
    ///
    /// - Throws: `invalidSize` when the range is outside the mapping; `busError` when the file no longer
    ///   holds the bytes.
    public func read(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        let outcome = result.withUnsafeMutableBytes { buffer in
            Result { () throws(SharedMemoryError) in try read(at: offset, into: buffer) }
        }
        try outcome.get()
        return result
    }

    /// Reads `buffer.count` bytes at `offset` into `buffer`, as ``read(at:count:)`` does.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(SharedMemoryError) {
        guard let destination = buffer.baseAddress, buffer.count > 0 else { return }
        try checkBacked(offset: offset, count: buffer.count, operation: "read")
        try BusGuard.copy(from: baseAddress + offset, to: destination, count: buffer.count, object: object)
    }

    /// Writes `bytes` at `offset` (from the start of the mapping), safely against a shrinking file.
    ///
    /// - Throws: `permissionDenied` on a read-only mapping; `invalidSize` outside the mapping; `busError`
    ///   when the file no longer holds the bytes (a shrink racing with the write may leave it partly done).
    public func write(_ bytes: [UInt8], at offset: Int) throws(SharedMemoryError) {
        guard isWritable else {
            throw CallSite(operation: "write", object: object).refusal(.permissionDenied, "the mapping is read-only")
        }
        try checkBacked(offset: offset, count: bytes.count, operation: "write")
        let outcome = bytes.withUnsafeBytes { source in
            Result { () throws(SharedMemoryError) in
                guard let start = source.baseAddress else { return }
                try BusGuard.copy(from: start, to: baseAddress + offset, count: source.count, object: object)
            }
        }
        try outcome.get()
    }

    /// Reads without the size check: only the guard stands between a shrunk file and `SIGBUS` (tests use
    /// this to prove the guard catches a shrink that happens after the check).
    func readGuardOnly(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] {
        try checkInMapping(offset: offset, count: count, operation: "read")
        var result = [UInt8](repeating: 0, count: count)
        let outcome = result.withUnsafeMutableBytes { buffer in
            Result { () throws(SharedMemoryError) in
                try BusGuard.copy(from: baseAddress + offset, to: buffer.baseAddress!, count: count, object: object)
            }
        }
        try outcome.get()
        return result
    }

    private func checkInMapping(offset: Int, count: Int, operation: String) throws(SharedMemoryError) {
        let site = CallSite(operation: operation, object: object)
        guard isMapped else { throw site.refusal(.notFound, "the mapping was unmapped") }
        guard offset >= 0, count >= 0, offset <= self.count, count <= self.count - offset else {
            throw site.refusal(.invalidSize, "bytes \(offset)..<\(offset &+ count) are outside the \(self.count)-byte mapping")
        }
    }

    private func checkBacked(offset: Int, count: Int, operation: String) throws(SharedMemoryError) {
        try checkInMapping(offset: offset, count: count, operation: operation)
        let size = try currentFileSize()
        let end = fileOffset + offset + count
        if end > size {
            throw CallSite(operation: operation, object: object).refusal(
                .busError,
                "the file is now \(size) bytes; bytes \(fileOffset + offset)..<\(end) of it are gone (it was shrunk)")
        }
    }
}
