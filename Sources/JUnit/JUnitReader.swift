/// One `<testsuite>` as read from (or written to) a report: its own host, time stamp and machine properties.
public struct JUnitSuite: Sendable {
    public var name: String
    public var hostname: String?
    public var timestamp: String?
    public var properties: [(name: String, value: String)]
    public var cases: [TestCaseResult]

    public init(name: String, hostname: String?, timestamp: String?, properties: [(name: String, value: String)], cases: [TestCaseResult]) {
        self.name = name
        self.hostname = hostname
        self.timestamp = timestamp
        self.properties = properties
        self.cases = cases
    }
}

/// A JUnit report read from a file.
public struct JUnitReport: Sendable {
    /// The file, as the user named it (errors and summaries cite it).
    public var path: String
    public var suites: [JUnitSuite]

    public var cases: [TestCaseResult] { suites.flatMap(\.cases) }
}

/// A report that cannot be used: the file, and the line and column when the problem has a place.
public struct JUnitReadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(path: String, line: Int? = nil, column: Int? = nil, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var place = path
        if let line { place += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        return "\(place): \(message)"
    }
}

/// Reads JUnit XML: a `<testsuites>` root (what `shm-harness run` writes) or a lone `<testsuite>` (what many
/// other tools write); nested `<testsuite>`s become suites of their own, inheriting host and time stamp.
///
/// A testcase's outcome is its first `<error>`, else its first `<failure>`, else its first `<skipped>`, else
/// passed; the element's text is the detail. `<system-out>` lines of the form `[[PROPERTY|name=value]]` are
/// the testcase's properties (metrics), the other lines its output. `<flakyFailure>`/`<flakyError>` (Surefire's
/// reruns) become the property `flaky=true`. `<system-err>` and `<rerun*>` elements are not kept.
public enum JUnitReader {
    public static func parse(_ bytes: [UInt8], path: String) throws(JUnitReadError) -> JUnitReport {
        let root: MiniXML.Element
        do {
            root = try MiniXML.parse(bytes)
        } catch {
            throw JUnitReadError(path: path, line: error.line, column: error.column, message: "not well-formed XML: \(error.message)")
        }
        var suites: [JUnitSuite] = []
        switch root.name {
        case "testsuites":
            for child in root.children where child.name == "testsuite" {
                try collect(child, path: path, inheritedHost: nil, inheritedTimestamp: nil, into: &suites)
            }
        case "testsuite":
            try collect(root, path: path, inheritedHost: nil, inheritedTimestamp: nil, into: &suites)
        default:
            throw JUnitReadError(
                path: path, line: root.line, column: root.column,
                message: "not a JUnit report: the root element is <\(root.name)>, expected <testsuites> or <testsuite>")
        }
        return JUnitReport(path: path, suites: suites)
    }

    static func collect(_ element: MiniXML.Element, path: String, inheritedHost: String?, inheritedTimestamp: String?, into suites: inout [JUnitSuite]) throws(JUnitReadError) {
        func fail(_ at: MiniXML.Element, _ message: String) -> JUnitReadError {
            JUnitReadError(path: path, line: at.line, column: at.column, message: message)
        }
        guard let name = element.attribute("name") else { throw fail(element, "<testsuite> has no name") }
        let host = element.attribute("hostname") ?? inheritedHost
        let timestamp = element.attribute("timestamp") ?? inheritedTimestamp
        var suite = JUnitSuite(name: name, hostname: host, timestamp: timestamp, properties: [], cases: [])
        var nested: [MiniXML.Element] = []
        for child in element.children {
            switch child.name {
            case "properties":
                for property in child.children where property.name == "property" {
                    guard let key = property.attribute("name") else { throw fail(property, "<property> has no name") }
                    suite.properties.append((key, property.attribute("value") ?? property.text))
                }
            case "testcase":
                suite.cases.append(try testcase(child, suite: name, path: path))
            case "testsuite":
                nested.append(child)
            default:
                break
            }
        }
        if !suite.cases.isEmpty || nested.isEmpty { suites.append(suite) }
        for child in nested {
            try collect(child, path: path, inheritedHost: host, inheritedTimestamp: timestamp, into: &suites)
        }
    }

    static func testcase(_ element: MiniXML.Element, suite: String, path: String) throws(JUnitReadError) -> TestCaseResult {
        guard let name = element.attribute("name") else {
            throw JUnitReadError(path: path, line: element.line, column: element.column, message: "<testcase> has no name")
        }
        var time = 0.0
        if let text = element.attribute("time"), !text.isEmpty {
            guard let value = Double(text.filter { $0 != "," }), value.isFinite, value >= 0 else {
                throw JUnitReadError(path: path, line: element.line, column: element.column, message: "testcase \(name): time \"\(text)\" is not a number of seconds")
            }
            time = value
        }
        let status: TestCaseResult.Status
        var detail = ""
        if let error = element.children(named: "error").first {
            status = .errored(message: error.attribute("message") ?? "", type: error.attribute("type") ?? "")
            detail = error.text
        } else if let failure = element.children(named: "failure").first {
            status = .failed(message: failure.attribute("message") ?? "", type: failure.attribute("type") ?? "")
            detail = failure.text
        } else if let skipped = element.children(named: "skipped").first {
            status = .skipped(message: skipped.attribute("message") ?? skipped.text)
        } else {
            status = .passed
        }
        var properties: [(name: String, value: String)] = []
        var output: [Substring] = []
        for out in element.children(named: "system-out") {
            // Property lines come first (as the runner writes them); the rest is output, kept whole.
            var rest = Substring(out.text)
            while rest.hasPrefix("[[PROPERTY|") {
                let end = rest.firstIndex(of: "\n") ?? rest.endIndex
                guard let property = property(rest[..<end]) else { break }
                properties.append(property)
                rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
            }
            if rest.contains("[[PROPERTY|") {
                // Later property lines (other tools interleave them with output) are read too.
                for line in rest.split(separator: "\n", omittingEmptySubsequences: false) {
                    if let property = property(line) { properties.append(property) } else { output.append(line) }
                }
            } else if !rest.isEmpty {
                output.append(rest)
            }
        }
        if element.children.contains(where: { $0.name == "flakyFailure" || $0.name == "flakyError" }),
           !properties.contains(where: { $0.name == "flaky" }) {
            properties.append(("flaky", "true"))
        }
        return TestCaseResult(
            classname: element.attribute("classname") ?? suite, name: name, time: time, status: status, detail: detail,
            output: output.joined(separator: "\n"), properties: properties)
    }

    /// `[[PROPERTY|name=value]]`.
    static func property(_ line: Substring) -> (name: String, value: String)? {
        guard line.hasPrefix("[[PROPERTY|"), line.hasSuffix("]]") else { return nil }
        let body = line.dropFirst(11).dropLast(2)
        guard let equals = body.firstIndex(of: "="), equals != body.startIndex else { return nil }
        return (String(body[..<equals]), String(body[body.index(after: equals)...]))
    }
}
