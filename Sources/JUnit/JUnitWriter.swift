/// Renders a JUnit XML report valid against the Jenkins `junit-10.xsd`: one `<testsuites>` root, one
/// `<testsuite>` per classname (with `name tests failures errors skipped time timestamp hostname` and the
/// machine's `<properties>`), one `<testcase>` per result.
///
/// That schema has no `<properties>` inside a `<testcase>`, so a testcase's metrics are written into its
/// `<system-out>` as `[[PROPERTY|name=value]]` lines (the junitxml convention that CI report viewers read),
/// before the workers' output.
public enum JUnitWriter {
    public static func render(_ results: [TestCaseResult], context: ReportContext) -> String {
        var suites: [JUnitSuite] = []
        for result in results {
            if let index = suites.firstIndex(where: { $0.name == result.classname }) {
                suites[index].cases.append(result)
            } else {
                suites.append(JUnitSuite(
                    name: result.classname, hostname: context.hostname, timestamp: context.timestamp,
                    properties: context.properties.sorted(by: { $0.name < $1.name }), cases: [result]))
            }
        }
        return render(suites: suites)
    }

    /// Renders suites as given (each with its own host, time stamp and properties, in their order); every
    /// count and time is computed from the testcases.
    public static func render(suites: [JUnitSuite]) -> String {
        func count(_ cases: [TestCaseResult], _ word: String) -> Int { cases.filter { $0.status.word == word }.count }
        let results = suites.flatMap(\.cases)
        let total = results.reduce(0.0) { $0 + $1.time }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites name=\"shm-harness\" tests=\"\(results.count)\" failures=\"\(count(results, "failed"))\""
        xml += " errors=\"\(count(results, "errored"))\" time=\"\(seconds(total))\">\n"
        for suite in suites {
            let time = suite.cases.reduce(0.0) { $0 + $1.time }
            xml += "  <testsuite name=\"\(attribute(suite.name))\" tests=\"\(suite.cases.count)\""
            xml += " failures=\"\(count(suite.cases, "failed"))\" errors=\"\(count(suite.cases, "errored"))\""
            xml += " skipped=\"\(count(suite.cases, "skipped"))\" time=\"\(seconds(time))\""
            if let timestamp = suite.timestamp { xml += " timestamp=\"\(attribute(timestamp))\"" }
            if let hostname = suite.hostname { xml += " hostname=\"\(attribute(hostname))\"" }
            xml += ">\n"
            xml += "    <properties>\n"
            for property in suite.properties {
                xml += "      <property name=\"\(attribute(property.name))\" value=\"\(attribute(property.value))\"/>\n"
            }
            xml += "    </properties>\n"
            for result in suite.cases {
                xml += "    <testcase classname=\"\(attribute(result.classname))\" name=\"\(attribute(result.name))\" time=\"\(seconds(result.time))\""
                var body = ""
                switch result.status {
                case .passed: break
                case .failed(let message, let type):
                    body += "      <failure message=\"\(attribute(message))\" type=\"\(attribute(type))\">\(text(result.detail))</failure>\n"
                case .errored(let message, let type):
                    body += "      <error message=\"\(attribute(message))\" type=\"\(attribute(type))\">\(text(result.detail))</error>\n"
                case .skipped(let message):
                    body += "      <skipped message=\"\(attribute(message))\"/>\n"
                }
                var out = result.properties.map { "[[PROPERTY|\($0.name)=\($0.value)]]" }.joined(separator: "\n")
                if !result.output.isEmpty { out += (out.isEmpty ? "" : "\n") + result.output }
                if !out.isEmpty { body += "      <system-out>\(text(out))</system-out>\n" }
                xml += body.isEmpty ? "/>\n" : ">\n" + body + "    </testcase>\n"
            }
            xml += "  </testsuite>\n"
        }
        xml += "</testsuites>\n"
        return xml
    }

    static func seconds(_ value: Double) -> String {
        let milliseconds = Int((max(0, value) * 1000).rounded())
        let fraction = String(milliseconds % 1000)
        return "\(milliseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// Escapes an attribute value; characters XML 1.0 forbids are dropped, newlines and tabs kept as references.
    public static func attribute(_ value: String) -> String { escape(value, inAttribute: true) }

    /// Escapes element text; characters XML 1.0 forbids are dropped.
    public static func text(_ value: String) -> String { escape(value, inAttribute: false) }

    static func escape(_ value: String, inAttribute: Bool) -> String {
        // Byte by byte: everything to escape or drop is ASCII, or U+FFFE/U+FFFF (EF BF BE, EF BF BF); a Swift
        // string is valid UTF-8 and holds no surrogate.
        func run(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
            var out: [UInt8] = []
            var copied = 0  // bytes[..<copied] are in out already (when out is in use)
            var changed = false
            var index = 0
            func replace(_ count: Int, with text: StaticString) {
                if !changed {
                    out.reserveCapacity(bytes.count + 16)
                    changed = true
                }
                out.append(contentsOf: bytes[copied..<index])
                text.withUTF8Buffer { out.append(contentsOf: $0) }
                index += count
                copied = index
            }
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "&"): replace(1, with: "&amp;")
                case UInt8(ascii: "<"): replace(1, with: "&lt;")
                case UInt8(ascii: ">"): replace(1, with: "&gt;")
                case UInt8(ascii: "\"") where inAttribute: replace(1, with: "&quot;")
                case UInt8(ascii: "'") where inAttribute: replace(1, with: "&apos;")
                case 10 where inAttribute: replace(1, with: "&#10;")
                case 13 where inAttribute: replace(1, with: "&#13;")
                case 9 where inAttribute: replace(1, with: "&#9;")
                case 9, 10, 13: index += 1
                case 0..<0x20: replace(1, with: "")
                case 0xEF where index + 2 < bytes.count && bytes[index + 1] == 0xBF && bytes[index + 2] >= 0xBE:
                    replace(3, with: "")
                default: index += 1
                }
            }
            guard changed else { return nil }
            out.append(contentsOf: bytes[copied...])
            return String(decoding: out, as: UTF8.self)
        }
        var value = value
        return value.withUTF8 { run($0) } ?? value
    }

    /// XML 1.0's Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
    static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD: true
        case 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }
}
