import ArgumentParser
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

@main
struct ShmHarness: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "shm-harness",
        abstract: "Qt-compatible shared memory: keys, segments and semaphores, and a harness that hammers them.",
        version: version,
        subcommands: [
            RunCommand.self, ValidateCommand.self, ListCommand.self, KeyCommand.self, CreateCommand.self,
            DumpCommand.self, WriteCommand.self, WorkerCommand.self, RunOneCommand.self, LsCommand.self, CleanCommand.self, DebugCommand.self, FileDebugCommand.self,
            BenchCommand.self, BenchWorkerCommand.self,
        ]
    )

    /// Exit codes: 0 success, 1 an operation failed, 2 the input is unusable (a bad flag or value).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as SharedMemoryError {
            writeStandardError("shm-harness: \(error)\n")
            Glibc.exit(1)
        } catch let error as CommandFailure {
            writeStandardError("shm-harness: \(error.message)\n")
            Glibc.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)
            }
            // swift-argument-parser uses EX_USAGE (64) for bad input; the contract says 2.
            let message = fullMessage(for: error)
            if !message.isEmpty { writeStandardError(message + "\n") }
            Glibc.exit(code == .validationFailure || code.rawValue == 64 ? 2 : code.rawValue)
        }
    }
}

/// A failure the CLI reports itself, with its exit code.
struct CommandFailure: Error {
    var message: String
    var exitCode: Int32 = 1
}

func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}

func writeStandardOutput(_ bytes: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < bytes.count {
        let n = write(1, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { throw CommandFailure(message: "cannot write to standard output") }
        offset += n
    }
}
