import CShmShim

#if canImport(Glibc)
import Glibc
#endif

/// The lean Swift worker's command line (`shm-harness-worker`, also `shm-harness worker`):
///
///     shm-harness-worker PLAN [--user U]               run one worker's plan (WorkerProcess)
///     shm-harness-worker --probe [--user U]            only check that dropping to U works (exit 0), else 3
///     shm-harness-worker --isolation-probe             exit 0 if the namespaces of SHM_HARNESS_ISOLATE=1 were made, else 4
///     shm-harness-worker [--user U] --exec -- PROGRAM [ARG...]
///                                                      die with the runner, drop to U, then execvp PROGRAM
///
/// No Foundation: a worker starts in about the time of the C worker.
public enum WorkerCommandLine {
    /// Runs the command line (without the program name); returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        var plan: String?
        var user: String?
        var probe = false
        var isolationProbe = false
        var exec = false
        var program: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--user":
                guard index + 1 < arguments.count else { return usage("--user needs a user name or uid") }
                user = arguments[index + 1]
                index += 1
            case let a where a.hasPrefix("--user="):
                user = String(a.dropFirst("--user=".count))
            case "--probe": probe = true
            case "--isolation-probe": isolationProbe = true
            case "--exec": exec = true
            case "--":
                program = Array(arguments[(index + 1)...])
                index = arguments.count
                continue
            case let a where a.hasPrefix("-") && a.count > 1:
                return usage("unknown option \(a)")
            default:
                guard plan == nil else { return usage("one plan file only (got \(plan!) and \(argument))") }
                plan = argument
            }
            index += 1
        }
        if isolationProbe {
            let status = shm_shim_isolation_status()
            if status == 1 { return 0 }
            if status == 0 {
                WorkerOutput.standardError("isolation was not applied (set SHM_HARNESS_ISOLATE=1)\n")
            } else {
                WorkerOutput.standardError("isolation failed: \(String(cString: shm_shim_isolation_failed_step())): \(String(cString: strerror(-status)))\n")
            }
            return 4
        }
        if probe || exec {
            guard plan == nil || exec else { return usage("--probe takes no plan") }
            if exec, let plan { program.insert(plan, at: 0) }
            guard setParentDeathSignal() else { return fail("the runner is gone", 2) }
            if let user {
                if let reason = UserDrop.drop(to: user) { return fail("cannot run as \(user): \(reason)", 3) }
                // Changing credentials clears the parent-death signal: ask again.
                guard setParentDeathSignal() else { return fail("the runner is gone", 2) }
            }
            if probe { return 0 }
            guard let first = program.first else { return usage("--exec needs a program after --") }
            let argv = program.map { strdup($0) } + [nil]
            execvp(first, argv)
            return fail("cannot execute \(first): \(String(cString: strerror(errno)))", 2)
        }
        guard program.isEmpty else { return usage("a program after -- needs --exec") }
        guard let plan else { return usage("worker takes one plan file") }
        return WorkerProcess.main(planPath: plan, user: user)
    }

    private static func usage(_ message: String) -> Int32 {
        WorkerOutput.standardError("shm-harness worker: \(message)\nusage: shm-harness-worker PLAN [--user U] | --probe [--user U] | [--user U] --exec -- PROGRAM [ARG...]\n")
        return 2
    }

    private static func fail(_ message: String, _ status: Int32) -> Int32 {
        WorkerOutput.standardError("shm-harness worker: \(message)\n")
        return status
    }
}

/// Output without Foundation: write(2), retried on EINTR and short writes.
enum WorkerOutput {
    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, base + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    static func standardError(_ text: String) { write(2, text) }

    /// The whole file as UTF-8 text; nil if it cannot be read or is not UTF-8.
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// A JSON string literal.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let s where s.value < 0x20:
                let hex = String(s.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
