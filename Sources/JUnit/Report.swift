/// The outcome of one testcase, as the JUnit report shows it.
public struct TestCaseResult: Sendable {
    public enum Status: Sendable, Equatable {
        case passed
        /// A broken expectation: `<failure>`.
        case failed(message: String, type: String)
        /// A timeout, a failure of the runner's own work, an unexpected signal: `<error>`.
        case errored(message: String, type: String)
        /// An unmet requirement: `<skipped>`.
        case skipped(message: String)

        public var word: String {
            switch self {
            case .passed: "passed"
            case .failed: "failed"
            case .errored: "errored"
            case .skipped: "skipped"
            }
        }
    }

    public var classname: String
    public var name: String
    /// Seconds.
    public var time: Double
    public var status: Status
    /// Details for the failure or error text (which worker, which step, the expectation).
    public var detail: String
    /// Each worker's last lines.
    public var output: String
    /// Metrics (operations, operations per second, lock latency percentiles), in order.
    public var properties: [(name: String, value: String)]
    /// The scenario file, for annotations.
    public var file: String?

    public init(
        classname: String, name: String, time: Double, status: Status, detail: String = "", output: String = "",
        properties: [(name: String, value: String)] = [], file: String? = nil
    ) {
        self.classname = classname
        self.name = name
        self.time = time
        self.status = status
        self.detail = detail
        self.output = output
        self.properties = properties
        self.file = file
    }
}

/// Everything a report holds besides the testcases.
public struct ReportContext: Sendable {
    public var hostname: String
    /// ISO 8601 without a zone (UTC), e.g. 2026-11-26T23:59:00.
    public var timestamp: String
    /// Machine properties, on every testsuite.
    public var properties: [(name: String, value: String)]

    public init(hostname: String, timestamp: String, properties: [(name: String, value: String)]) {
        self.hostname = hostname
        self.timestamp = timestamp
        self.properties = properties
    }
}
