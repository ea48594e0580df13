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
            ScenariosCommand.self, ReportCommand.self, BenchCommand.self, BenchWorkerCommand.self,
        ]
    )

    /// Exit codes: 0 success, 1 an operation failed, 2 the input is unusable (a bad flag or value).
    static func main() {
        prepareStandardDescriptors()
        // `help scenarios`, `scenarios --help`: the scenario format reference, not a generated usage text.
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["help", "scenarios"] || (arguments.first == "scenarios" && arguments.count == 2 && ["--help", "-h", "help"].contains(arguments[1])) {
            ScenariosCommand.printReference()
            Glibc.exit(0)
        }
        do {
            var command = try parseAsRoot()
            // A worker keeps the default: what it executes (exec workers) inherits an ignored SIGPIPE.
            if command is WorkerCommand { signal(SIGPIPE, SIG_DFL) }
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

/// Started with stdin, stdout or stderr closed (`2>&-`), the first file or pipe the process opens would get that
/// number and progress text would land in it: /dev/null takes the place first. A reader of stdout or stderr
/// that goes away (`| head -2`) gives EPIPE, not SIGPIPE: the run goes on, writes its report and cleans up.
/// Workers get SIGPIPE's default action back when they are spawned.
func prepareStandardDescriptors() {
    for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
        let opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
        if opened >= 0 && opened != fd {
            dup2(opened, fd)
            close(opened)
        }
    }
    signal(SIGPIPE, SIG_IGN)
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

/// `shm-harness scenarios` (also `help scenarios`): prints the scenario format reference (docs/scenario-format.md,
/// built into the binary).
struct ScenariosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenarios", abstract: "Print the scenario file format reference (docs/scenario-format.md).")

    func run() throws { Self.printReference() }

    static func printReference() {
        let bytes = Array((ScenarioReference.text + "\n").utf8)
        bytes.withUnsafeBytes { try? writeStandardOutput($0) }
    }
}
