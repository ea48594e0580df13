import Foundation
import WorkerKit

/// `requires: second-user`: can a worker drop to 'nobody' here? Asked once, of a worker process (`--probe`),
/// the first time a testcase needs the answer; runs without such a testcase start no probe process.
final class SecondUserProbe: @unchecked Sendable {
    private let command: [String]
    private let harnessPath: String
    private let lock = NSLock()
    private var answer: (met: Bool, reason: String?)?

    init(command: [String], harnessPath: String) {
        self.command = command
        self.harnessPath = harnessPath
    }

    var result: (met: Bool, reason: String?) {
        lock.lock()
        defer { lock.unlock() }
        if let answer { return answer }
        let made: (Bool, String?)
        if let probe = try? SpawnedProcess(label: "probe", arguments: command, environment: ProcessInfo.processInfo.environment),
            SpawnedProcess.exitCode(probe.wait()) == 0
        {
            made = (true, nil)
        } else {
            made = (false, "requires second-user: 'nobody' cannot run \(harnessPath) (a directory on its path is not searchable by others)")
        }
        answer = made
        return made
    }
}

extension Requirements {
    /// Whether this machine has `requirement` (second-user is probed on first use).
    func isMet(_ requirement: Requirement) -> Bool {
        if requirement == .secondUser, met[.secondUser] == nil, let secondUserProbe { return secondUserProbe.result.met }
        return met[requirement] == true
    }

    /// Why `requirement` is unmet.
    func reason(_ requirement: Requirement) -> String? {
        if requirement == .secondUser, met[.secondUser] == nil, let secondUserProbe, let reason = secondUserProbe.result.reason {
            return reason
        }
        return reasons[requirement]
    }
}
