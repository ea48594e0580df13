import Foundation
import ScenarioKit

#if canImport(Glibc)
import Glibc
#endif

/// `limits:` (docs/scenario-format.md, "limits"): applied in the isolated testcase process (`run-one`), inside
/// its private IPC namespace and over its private /dev/shm, before setup and the workers run.
extension TestcaseRun {
    enum LimitsOutcome: Equatable {
        case applied
        /// The machine cannot give this testcase private limits here (not isolated): a skip, as `requires`.
        case unavailable(String)
        /// Isolated, but a limit could not be set (the kernel refused it): the testcase errs.
        case failed(String)
    }

    /// Writes the System V limits of the testcase's IPC namespace and resizes its private /dev/shm; checks
    /// `nofile` against the hard limit (the workers get it at spawn). Only ever in an isolated process: the
    /// same writes outside would change the machine's limits and the machine's /dev/shm.
    static func applyLimits(_ limits: TestcaseLimits, isolated: Bool = Isolation.isIsolated) -> LimitsOutcome {
        guard isolated else {
            return .unavailable("limits: needs the testcase's private IPC namespace and /dev/shm (isolation: root, and not --no-isolate); the machine's own limits are not the run's to change")
        }
        for (name, value) in limits.sysctls {
            let path = "/proc/sys/" + name.replacingOccurrences(of: ".", with: "/")
            if let problem = writeSysctl(path, value) { return .failed("limits: cannot set \(name) to \(value): \(problem)") }
        }
        if let size = limits.devShmSize {
            let options = "size=\(size),mode=1777"
            if mount("shm-harness", "/dev/shm", "tmpfs", UInt(MS_REMOUNT | MS_NOSUID | MS_NODEV), options) != 0 {
                return .failed("limits: cannot remount the private /dev/shm with \(options): \(String(cString: strerror(errno)))")
            }
            var info = statvfs()
            let pages = (size + 4095) / 4096
            guard statvfs("/dev/shm", &info) == 0, Int(info.f_blocks) * Int(info.f_frsize) >= pages * 4096,
                Int(info.f_blocks) * Int(info.f_frsize) < pages * 4096 + Int(info.f_frsize)
            else {
                return .failed("limits: the private /dev/shm is \(Int(info.f_blocks) * Int(info.f_frsize)) bytes after remounting it with \(options)")
            }
        }
        if let nofile = limits.nofile {
            var current = rlimit()
            guard getrlimit(RLIMIT_NOFILE_VALUE, &current) == 0 else { return .failed("limits: getrlimit(RLIMIT_NOFILE): \(String(cString: strerror(errno)))") }
            if current.rlim_max != rlim_t.max && rlim_t(nofile) > current.rlim_max {
                return .failed("limits: nofile \(nofile) is above the hard RLIMIT_NOFILE \(current.rlim_max) here")
            }
        }
        return .applied
    }

    /// Writes a `/proc/sys` file and reads it back (the kernel may clamp or refuse silently); nil when it holds
    /// the value.
    private static func writeSysctl(_ path: String, _ value: String) -> String? {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return "open \(path): \(String(cString: strerror(errno)))" }
        let bytes = Array((value + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let writeError = errno
        close(fd)
        guard written == bytes.count else { return "write \(path): \(String(cString: strerror(writeError)))" }
        guard let back = try? String(contentsOfFile: path, encoding: .utf8) else { return "cannot read \(path) back" }
        let normalized = back.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).joined(separator: " ")
        return normalized == value ? nil : "\(path) holds \(normalized) after writing \(value)"
    }

    /// `u64-less-than`: nil when the u64 read is below the bound, else what was found.
    static func notBelow(_ got: [UInt8], _ check: MemoryCheck) -> String? {
        guard case .u64(let bound) = check.value else { return "u64-less-than needs a u64 bound" }
        let value = StepExecutor.littleEndian(got)
        return value < bound ? nil : "want u64 below \(bound), got u64 \(value)"
    }
}
