import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The `<properties>` of every testsuite: what machine, kernel and limits the run saw.
enum MachineProperties {
    static func collect(version: String) -> [(name: String, value: String)] {
        var props: [(String, String)] = []
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        props.append(("kernel.release", field(names.release)))
        props.append(("architecture", field(names.machine)))
        props.append(("uid", "\(geteuid())"))
        let temp = RunEnvironment.temporaryDirectory
        for (label, path) in [("dev_shm", "/dev/shm"), ("tmpdir", temp)] {
            var fs = statvfs()
            if statvfs(path, &fs) == 0 {
                props.append(("\(label).path", path))
                props.append(("\(label).fs_type", MountTable.fileSystemType(of: path) ?? "unknown"))
                props.append(("\(label).size_bytes", "\(UInt64(fs.f_blocks) * UInt64(fs.f_frsize))"))
                props.append(("\(label).free_bytes", "\(UInt64(fs.f_bavail) * UInt64(fs.f_frsize))"))
            }
        }
        for name in ["shmmax", "shmmni", "shmall", "sem"] {
            if let text = try? String(contentsOfFile: "/proc/sys/kernel/\(name)", encoding: .utf8) {
                props.append(("kernel.\(name)", text.split(whereSeparator: \.isWhitespace).joined(separator: " ")))
            }
        }
        props.append(("harness.version", version))
        return props
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(cString: buffer)
    }

    /// `2026-11-30T01:02:03` (UTC, JUnit's form), by strftime: a date formatter loads ICU's data (milliseconds
    /// of every run's start-up).
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
