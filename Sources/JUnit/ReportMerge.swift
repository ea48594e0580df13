/// `shm-harness report merge`: joins reports (e.g. the shards of one run) into one.
///
/// - Suites: every input `<testsuite>` keeps its own `hostname`, `timestamp` and `<properties>` (the schema
///   allows one `<properties>` per testsuite, and shards may run on different machines). Two suites are
///   joined into one element only when their name, hostname and properties are all identical (the earlier
///   time stamp is kept); otherwise they stay separate elements, even with the same name.
/// - Testcases: classname + name must stay unique (GitLab and others keep only one of duplicates). By default a
///   duplicate is an error naming the testcase and both files; with `.rename`, the first occurrence (in the
///   order of the files given) keeps its name and later ones get " #2", " #3"...
/// - Every count and total is recomputed from the testcases.
public enum ReportMerge {
    public enum Duplicates: String, Sendable, CaseIterable {
        case error, rename
    }

    public struct DuplicateError: Error, Sendable, CustomStringConvertible {
        /// Each duplicate: the testcase and the two files that hold it.
        public var duplicates: [(testcase: String, first: String, second: String)]
        /// The first 20 duplicates, then how many more.
        public var description: String {
            var lines = duplicates.prefix(20).map { "testcase \($0.testcase) is in both \($0.first) and \($0.second)" }
            if duplicates.count > 20 { lines.append("... and \(duplicates.count - 20) more duplicate testcases") }
            return lines.joined(separator: "\n")
        }
    }

    public static func merge(_ reports: [JUnitReport], duplicates: Duplicates) throws(DuplicateError) -> [JUnitSuite] {
        var suites: [JUnitSuite] = []
        var seen: [String: String] = [:]  // classname.name -> the file
        var occurrences: [String: Int] = [:]
        var problems: [(testcase: String, first: String, second: String)] = []
        for report in reports {
            for suite in report.suites {
                var cases: [TestCaseResult] = []
                for var result in suite.cases {
                    let key = uniqueKey(classname: result.classname, name: result.name)
                    if let first = seen[key] {
                        switch duplicates {
                        case .error:
                            problems.append((identifier(result), first, report.path))
                            continue
                        case .rename:
                            var number = occurrences[key, default: 1]
                            var renamed: String
                            repeat {
                                number += 1
                                renamed = "\(result.name) #\(number)"
                            } while seen[uniqueKey(classname: result.classname, name: renamed)] != nil
                            occurrences[key] = number
                            result.name = renamed
                        }
                    }
                    seen[uniqueKey(classname: result.classname, name: result.name)] = report.path
                    cases.append(result)
                }
                if let index = suites.firstIndex(where: { sameMachine($0, suite) }) {
                    suites[index].cases += cases
                    if let timestamp = suite.timestamp, suites[index].timestamp.map({ timestamp < $0 }) ?? true {
                        suites[index].timestamp = timestamp
                    }
                } else {
                    var copy = suite
                    copy.cases = cases
                    suites.append(copy)
                }
            }
        }
        guard problems.isEmpty else { throw DuplicateError(duplicates: problems) }
        return suites
    }

    static func sameMachine(_ a: JUnitSuite, _ b: JUnitSuite) -> Bool {
        a.name == b.name && a.hostname == b.hostname && a.properties.count == b.properties.count
            && zip(a.properties, b.properties).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// `classname.name`, as reports and progress lines show a testcase.
    public static func identifier(_ result: TestCaseResult) -> String { identifier(classname: result.classname, name: result.name) }

    /// What JUnit consumers compare: the classname and name attributes (a NUL cannot occur in XML).
    static func uniqueKey(classname: String, name: String) -> String { classname + "\u{0}" + name }

    static func identifier(classname: String, name: String) -> String { classname.isEmpty ? name : "\(classname).\(name)" }
}
