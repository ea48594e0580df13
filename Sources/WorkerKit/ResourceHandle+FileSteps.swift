import SharedMemoryKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension ResourceHandle {
    /// `sync`: msync(MS_SYNC) of this worker's mapping (a file or a memfd).
    func sync() throws(SharedMemoryError) {
        guard let mapping = fileMapping else {
            throw SharedMemoryError(.notFound, operation: "sync", object: objectName, detail: "not attached")
        }
        try mapping.sync()
    }

    /// `check-file`: the bytes `read(2)` returns at `offset` of the file, opened afresh (O_RDONLY | O_NOFOLLOW):
    /// what the file holds, whatever this worker's mapping shows.
    func readFile(at offset: Int, count: Int) throws(SharedMemoryError) -> [UInt8] {
        guard let path = spec.path, spec.kind == .file else {
            throw SharedMemoryError(.invalidSize, operation: "check-file", object: objectName, detail: "only a file resource has a file to read")
        }
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let err = errno
            throw SharedMemoryError(err == ENOENT ? .notFound : err == EACCES || err == ELOOP ? .permissionDenied : .unknown,
                                    operation: "check-file", call: "open", underlyingError: Errno(rawValue: err), object: path)
        }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw SharedMemoryError(.unknown, operation: "check-file", call: "pread", underlyingError: Errno(rawValue: errno), object: path)
            }
            if n == 0 {
                throw SharedMemoryError(.invalidSize, operation: "check-file", object: path, detail: "offset \(offset)+\(count) is past the end of the file (\(offset + done) bytes)")
            }
            done += n
        }
        return bytes
    }
}
