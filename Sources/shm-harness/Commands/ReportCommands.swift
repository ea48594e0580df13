import ArgumentParser
import Foundation
import JUnit

#if canImport(Glibc)
import Glibc
#endif

/// `shm-harness report merge|summary`: JUnit reports after the run (shards joined, a summary for CI).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Merge JUnit reports (e.g. shards) and summarize them for CI.",
        subcommands: [ReportMergeCommand.self, ReportSummaryCommand.self]
    )

    /// Reads every file, collecting every problem (exit 2 naming each file, and line:column for XML errors).
    static func readReports(_ paths: [String]) throws -> [JUnitReport] {
        var reports: [JUnitReport] = []
        var problems: [String] = []
        for path in paths {
            do {
                reports.append(try JUnitReader.parse(try readFile(path), path: path))
            } catch let error as JUnitReadError {
                problems.append(error.description)
            } catch {
                problems.append("\(path): \(error)")
            }
        }
        guard problems.isEmpty else { throw CommandFailure(message: problems.joined(separator: "\n"), exitCode: 2) }
        return reports
    }

    /// A report's bytes; a read error names the file and the errno text.
    static func readFile(_ path: String) throws -> [UInt8] {
        let limit = 256 << 20
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw JUnitReadError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw JUnitReadError(path: path, message: "cannot stat: \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw JUnitReadError(path: path, message: "not a regular file") }
        guard Int(info.st_size) <= limit else { throw JUnitReadError(path: path, message: "larger than \(limit >> 20) MiB") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw JUnitReadError(path: path, message: "cannot read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += buffer[0..<n]
            if bytes.count > limit { throw JUnitReadError(path: path, message: "larger than \(limit >> 20) MiB") }
        }
        return bytes
    }
}

struct ReportMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join JUnit reports (e.g. the shards of one run) into one valid report.",
        discussion: """
            Each input <testsuite> keeps its own hostname, timestamp and <properties>; suites with the same name \
            are joined into one element only when their hostname and properties are identical. Counts and times \
            are recomputed. A testcase (classname + name) found twice is an error naming both files (exit 2), \
            because JUnit consumers keep only one of duplicates; --duplicates rename keeps both, renaming later \
            occurrences "NAME #2", "NAME #3" (in the order the files are given).
            """
    )

    @Argument(help: "JUnit XML reports.")
    var files: [String]

    @Option(name: [.short, .customLong("output")], help: "Where to write the merged report.")
    var output: String

    @Option(help: "What to do with a testcase found twice: error (default) or rename.")
    var duplicates: ReportMerge.Duplicates = .error

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one report to merge") }
    }

    func run() throws {
        let reports = try ReportCommand.readReports(files)
        let suites: [JUnitSuite]
        do {
            suites = try ReportMerge.merge(reports, duplicates: duplicates)
        } catch {
            throw CommandFailure(
                message: "\(error)\n(shards of one run never share a testcase; use --duplicates rename to keep both)", exitCode: 2)
        }
        let xml = JUnitWriter.render(suites: suites)
        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().path
        if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        do {
            try xml.write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
            throw CommandFailure(message: "cannot write \(output): \(error.localizedDescription)")
        }
        let count = suites.reduce(0) { $0 + $1.cases.count }
        writeStandardError("shm-harness: merged \(files.count) report(s), \(count) testcase(s), into \(output)\n")
    }
}

extension ReportMerge.Duplicates: ExpressibleByArgument {}

struct ReportSummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Summarize JUnit reports: totals, failures and errors, flaky and slowest testcases.",
        discussion: """
            A testcase is flaky when it passed in one report (or run) and failed or erred in another, or when its \
            system-out carries [[PROPERTY|flaky=true]]. --markdown prints a form ready for $GITHUB_STEP_SUMMARY \
            or a GitLab note. Exit 0 whatever the outcomes (the run's own exit status gates the job); 2 when a \
            file is missing, not XML or not a JUnit report.
            """
    )

    @Argument(help: "JUnit XML reports.")
    var files: [String]

    @Flag(help: "Print Markdown (tables, failures in <details>).")
    var markdown = false

    @Option(help: "How many of the slowest testcases to list.")
    var slowest = 5

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one report") }
        if slowest < 0 { throw ValidationError("--slowest must be 0 or more") }
    }

    func run() throws {
        let summary = ReportSummary(try ReportCommand.readReports(files), slowest: slowest)
        var text = markdown ? summary.markdown() : summary.text()
        try text.withUTF8 { try writeStandardOutput(UnsafeRawBufferPointer($0)) }
    }
}
