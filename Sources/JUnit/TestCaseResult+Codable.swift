/// Testcase results cross a process boundary when a testcase runs in its own (isolated) process.
extension TestCaseResult: Codable {
    enum CodingKeys: String, CodingKey {
        case classname, name, time, status, message, type, detail, output, properties, file
    }

    struct Property: Codable {
        var name: String
        var value: String
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
        let type = try c.decodeIfPresent(String.self, forKey: .type) ?? ""
        let status: Status
        switch try c.decode(String.self, forKey: .status) {
        case "passed": status = .passed
        case "failed": status = .failed(message: message, type: type)
        case "errored": status = .errored(message: message, type: type)
        case "skipped": status = .skipped(message: message)
        case let other: throw DecodingError.dataCorruptedError(forKey: .status, in: c, debugDescription: "unknown status \(other)")
        }
        self.init(
            classname: try c.decode(String.self, forKey: .classname), name: try c.decode(String.self, forKey: .name),
            time: try c.decode(Double.self, forKey: .time), status: status,
            detail: try c.decodeIfPresent(String.self, forKey: .detail) ?? "",
            output: try c.decodeIfPresent(String.self, forKey: .output) ?? "",
            properties: (try c.decodeIfPresent([Property].self, forKey: .properties) ?? []).map { ($0.name, $0.value) },
            file: try c.decodeIfPresent(String.self, forKey: .file))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(classname, forKey: .classname)
        try c.encode(name, forKey: .name)
        try c.encode(time, forKey: .time)
        try c.encode(status.word, forKey: .status)
        switch status {
        case .passed: break
        case .failed(let message, let type), .errored(let message, let type):
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
        case .skipped(let message):
            try c.encode(message, forKey: .message)
        }
        try c.encode(detail, forKey: .detail)
        try c.encode(output, forKey: .output)
        try c.encode(properties.map { Property(name: $0.name, value: $0.value) }, forKey: .properties)
        try c.encodeIfPresent(file, forKey: .file)
    }
}
