#if canImport(Glibc)
import Glibc
#endif

extension TestcaseRun {
    /// Writes a worker's plan: a new file (O_EXCL, never through a symlink), mode 0644 (a worker that drops to
    /// another user reads it in the 0711 work folder). Plain write(2): Foundation's `String.write(toFile:)`
    /// fsyncs every file, which cost up to 50 ms per worker on a disk-backed temp folder; a plan lives only
    /// as long as the run.
    static func writePlan(_ text: String, to path: String) throws(SpawnError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SpawnError("plan", "open \(path)", errno) }
        defer { close(fd) }
        fchmod(fd, 0o644)
        var text = text
        let failure: Int32? = text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return n < 0 ? errno : EIO }
                offset += n
            }
            return nil
        }
        if let failure { throw SpawnError("plan", "write \(path)", failure) }
    }
}
