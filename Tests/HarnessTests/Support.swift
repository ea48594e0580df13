import Foundation
import Harness
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

enum Paths {
    static let packageRoot = TestPaths.packageRoot
    static let fixtures = packageRoot + "/Tests/HarnessTests/Fixtures"
    static let harness = TestPaths.harness
    static let schema = packageRoot + "/Tests/HarnessTests/Fixtures/junit-10.xsd"
    static let xmllint: String? = ["/usr/bin/xmllint", "/bin/xmllint"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs a command to its end: exit status, stdout, stderr.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    var exitCode: Int32? { SpawnedProcess.exitCode(status) }

    static func command(_ arguments: [String], timeout: Double = 300) throws -> Run {
        let process = try SpawnedProcess(label: arguments[0], arguments: arguments, environment: ProcessInfo.processInfo.environment)
        process.closeInput()
        var out: [UInt8] = []
        var err: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        func drain(_ fd: Int32, into data: inout [UInt8]) -> Bool {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { data.append(contentsOf: buffer[0..<n]) }
            return n == 0
        }
        var outDone = false
        var errDone = false
        while !(outDone && errDone) {
            var fds = [pollfd(fd: process.stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: process.stderrFD, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 100)
            if !outDone && fds[0].revents != 0 { outDone = drain(process.stdoutFD, into: &out) }
            if !errDone && fds[1].revents != 0 { errDone = drain(process.stderrFD, into: &err) }
            if Date() > deadline {
                process.killGroup()
                break
            }
        }
        let status = process.wait()
        return Run(status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Copies an executable (mode 0700); false if it could not.
    static func copyFile(_ source: String, to destination: String) -> Bool {
        (try? FileManager.default.copyItem(atPath: source, toPath: destination)) != nil && chmod(destination, 0o700) == 0
    }

    /// `shm-harness ARGS`.
    static func harness(_ arguments: [String], timeout: Double = 300) throws -> Run {
        try command([Paths.harness] + arguments, timeout: timeout)
    }
}

/// A unique temporary file path (removed by the caller).
func temporaryPath(_ name: String) -> String {
    "\(NSTemporaryDirectory())/shm-harness-test-\(getpid())-\(UInt32.random(in: 0 ... .max))-\(name)"
}

/// Validates a JUnit file against the Jenkins schema with xmllint; nil when valid, else xmllint's words.
func schemaProblems(_ path: String) throws -> String? {
    guard let xmllint = Paths.xmllint else { return "xmllint is not installed" }
    let run = try Run.command([xmllint, "--noout", "--schema", Paths.schema, path])
    return run.exitCode == 0 ? nil : run.stderr
}
