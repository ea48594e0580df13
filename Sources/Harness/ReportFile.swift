#if canImport(Glibc)
import Glibc
#endif

/// Writes the JUnit report atomically (a new file beside it, then rename(2)): a reader sees the old report or
/// the whole new one. Without the fsync Foundation's `write(toFile:atomically:)` makes (tens of milliseconds
/// per run on a loaded disk): a report matters once the run is over, not across a power cut.
enum ReportFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func write(_ text: String, to path: String) throws(Failure) {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot write the report \(temporary): \(String(cString: strerror(errno)))") }
        var text = text
        let failure: Int32? = text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return n < 0 ? errno : EIO }
                offset += n
            }
            return nil
        }
        close(fd)
        if let failure {
            unlink(temporary)
            throw Failure(description: "cannot write the report \(temporary): \(String(cString: strerror(failure)))")
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw Failure(description: "cannot write the report \(path): \(String(cString: strerror(code)))")
        }
    }
}
