import Foundation
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Loads scenario files (the v1 contract) with Yams, expands the matrix and validates every field.
public enum ScenarioLoader {
    static let topKeys = ["name", "summary", "tags", "requires", "timeout", "matrix", "resources", "setup", "workers", "expect", "divergence", "limits", "chaos", "start-delay"]
    public static let defaultTimeout: Duration = .seconds(120)

    /// All `.yaml`/`.yml` files under `path` (or `path` itself), sorted.
    public static func files(at path: String) throws(ScenarioErrors) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScenarioErrors([ScenarioError(SourceLocation(file: path, line: 1, column: 1), "no such file or directory")])
        }
        guard isDirectory.boolValue else { return [path] }
        let enumerator = FileManager.default.enumerator(atPath: path)
        var found: [String] = []
        while let item = enumerator?.nextObject() as? String {
            if item.hasSuffix(".yaml") || item.hasSuffix(".yml") {
                found.append(path.hasSuffix("/") ? path + item : path + "/" + item)
            }
        }
        return found.sorted()
    }

    /// The testcases of one file: one per matrix combination.
    /// - Parameter root: the scenarios root, for the JUnit classname (the file's folder below it).
    public static func load(file: String, root: String? = nil) throws(ScenarioErrors) -> [Scenario] {
        let text: String
        switch readText(file) {
        case .success(let value): text = value
        case .failure(let failure):
            throw ScenarioErrors([ScenarioError(SourceLocation(file: file, line: failure.line, column: failure.column), failure.message)])
        }
        return try load(text: text, file: file, root: root)
    }

    /// A scenario file's text: a regular file (a device, FIFO or directory is refused before reading: never
    /// blocks, never reads forever) of at most ``ScenarioLimits/fileBytes``, in UTF-8.
    static func readText(_ file: String) -> Result<String, ScenarioLoader.Failure> {
        let fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(Failure("cannot open the file: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return .failure(Failure("cannot read the file: \(String(cString: strerror(errno)))")) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            return .failure(Failure("not a regular file (\(fileType(status.st_mode))); scenarios are YAML files"))
        }
        let limit = ScenarioLimits.fileBytes
        guard status.st_size <= limit else {
            return .failure(Failure("the file is \(status.st_size) bytes; a scenario file is at most \(limit) bytes"))
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(Failure("cannot read the file: \(String(cString: strerror(errno)))")) }
            if n == 0 { break }
            bytes += chunk[0..<n]
            // The file may grow while it is read.
            if bytes.count > limit { return .failure(Failure("the file is more than \(limit) bytes; a scenario file is at most \(limit) bytes")) }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let valid = bytes.withUnsafeBufferPointer { buffer in
                var decoder = UTF8()
                var iterator = buffer.makeIterator()
                var offset = 0
                var line = 1
                var column = 1
                loop: while true {
                    switch decoder.decode(&iterator) {
                    case .scalarValue(let scalar):
                        offset += UTF8.width(scalar)
                        if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
                    case .emptyInput, .error: break loop
                    }
                }
                return (offset, line, column)
            }
            return .failure(Failure("not UTF-8 text: byte \(valid.0) is not valid UTF-8", line: valid.1, column: valid.2))
        }
        return .success(text)
    }

    public struct Failure: Error {
        public var message: String
        public var line = 1
        public var column = 1
        init(_ message: String, line: Int = 1, column: Int = 1) {
            self.message = message
            self.line = line
            self.column = column
        }
    }

    static func fileType(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "mode \(String(mode & S_IFMT, radix: 8))"
        }
    }

    public static func load(text: String, file: String, root: String? = nil) throws(ScenarioErrors) -> [Scenario] {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                throw ScenarioErrors([ScenarioError(SourceLocation(file: file, line: 1, column: 1), "the file is empty")])
            }
            node = composed
        } catch let error as ScenarioErrors {
            throw error
        } catch let error as YamlError {
            throw ScenarioErrors([yamlError(error, file: file)])
        } catch {
            throw ScenarioErrors([ScenarioError(SourceLocation(file: file, line: 1, column: 1), "not YAML: \(error)")])
        }

        var reader = NodeReader(file: file, variables: [:])
        let nodes = countNodes(node, reader: &reader)
        guard reader.errors.isEmpty else { throw ScenarioErrors(reader.errors) }
        guard let top = reader.mapping(node, "a scenario", allowed: topKeys) else { throw ScenarioErrors(reader.errors) }
        let matrixNode = top.first { $0.key == "matrix" }?.value
        let combinations = matrix(matrixNode, reader: &reader)
        guard reader.errors.isEmpty else { throw ScenarioErrors(reader.errors) }
        // Every combination reads the whole tree again.
        let work = nodes.multipliedReportingOverflow(by: combinations.count)
        if work.overflow || work.partialValue > ScenarioLimits.loaderWork {
            reader.fail(matrixNode, "the matrix's \(combinations.count) combinations × \(nodes) YAML nodes make \(combinations.count * nodes) nodes to read; at most \(ScenarioLimits.loaderWork) (fewer combinations, or split the file)")
            throw ScenarioErrors(reader.errors)
        }

        var scenarios: [Scenario] = []
        var errors: [ScenarioError] = []
        var seenErrors = Set<ScenarioError>()
        for combination in combinations {
            var variables: [String: String] = [:]
            for (name, value) in combination { variables[name] = value }
            var interpreter = Interpreter(reader: NodeReader(file: file, variables: variables))
            let scenario = interpreter.scenario(top, file: file, root: root, combination: combination, node: node)
            for error in interpreter.reader.errors where seenErrors.insert(error).inserted { errors.append(error) }
            if let scenario { scenarios.append(scenario) }
        }
        guard errors.isEmpty else { throw ScenarioErrors(errors) }
        return scenarios
    }

    /// Counts the YAML nodes of the tree as the loader will read them, aliases expanded, stopping at
    /// ``ScenarioLimits/yamlNodes`` (an alias bomb is refused after that many steps, not expanded).
    static func countNodes(_ root: Node, reader: inout NodeReader) -> Int {
        let limit = ScenarioLimits.yamlNodes
        var count = 0
        // (node, its parent's mark): a node whose mark is before its parent's came through an alias.
        var stack: [(Node, Mark?)] = [(root, nil)]
        var firstAlias: Node?
        while let (node, parentMark) = stack.popLast() {
            count += 1
            if firstAlias == nil, let parentMark, let mark = node.mark,
                (mark.line, mark.column) < (parentMark.line, parentMark.column)
            {
                firstAlias = node
            }
            if count > limit {
                let through = firstAlias.map { " (aliases repeat what their anchor holds: the anchor at line \(reader.location($0).line), column \(reader.location($0).column) is used again later)" } ?? ""
                reader.fail(firstAlias ?? node, "the file has more than \(limit) YAML nodes once aliases are expanded\(through); at most \(limit)")
                return count
            }
            switch node {
            case .scalar, .alias: break
            case .sequence(let sequence):
                for child in sequence.reversed() { stack.append((child, node.mark)) }
            case .mapping(let mapping):
                for (key, value) in mapping.reversed() {
                    stack.append((value, node.mark))
                    stack.append((key, node.mark))
                }
            }
        }
        return count
    }

    /// Every combination of the matrix's values, in the matrix's order. The number of combinations is the
    /// product of the dimensions' sizes: it is checked before anything is expanded.
    static func matrix(_ node: Node?, reader: inout NodeReader) -> [[(name: String, value: String)]] {
        guard let node else { return [[]] }
        guard case .mapping(let mapping) = node else {
            reader.fail(node, "matrix must be a mapping of names to lists of values")
            return [[]]
        }
        var dimensions: [(name: String, values: [String])] = []
        for (keyNode, valuesNode) in mapping {
            guard let name = keyNode.scalar?.string, !name.isEmpty,
                name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
            else {
                reader.fail(keyNode, "matrix names are plain words (letters, digits, _ and -)")
                continue
            }
            if name.utf8.count > ScenarioLimits.nameBytes {
                reader.fail(keyNode, "the matrix name is \(name.utf8.count) bytes; at most \(ScenarioLimits.nameBytes)")
                continue
            }
            if dimensions.contains(where: { $0.name == name }) {
                reader.fail(keyNode, "duplicate matrix name '\(name)'")
                continue
            }
            guard case .sequence(let values) = valuesNode, !values.isEmpty else {
                reader.fail(valuesNode, "matrix '\(name)' must be a non-empty list of values")
                continue
            }
            var strings: [String] = []
            var seen = Set<String>()
            for value in values {
                guard let text = value.scalar?.string else {
                    reader.fail(value, "matrix values must be single values")
                    continue
                }
                if !seen.insert(text).inserted { reader.fail(value, "duplicate value '\(text)' in matrix '\(name)'") }
                strings.append(text)
            }
            dimensions.append((name, strings))
        }
        let limit = ScenarioLimits.matrixCombinations
        var product = 1
        for dimension in dimensions {
            let next = product.multipliedReportingOverflow(by: dimension.values.count)
            product = next.overflow ? Int.max : next.partialValue
        }
        if product > limit {
            let sizes = dimensions.count > 8 ? "\(dimensions.count) dimensions of \(dimensions.map(\.values.count).min() ?? 0) to \(dimensions.map(\.values.count).max() ?? 0) values" : dimensions.map { "\($0.values.count)" }.joined(separator: " × ")
            let shown = product == Int.max ? "more than \(Int.max)" : "\(product)"
            reader.fail(node, "the matrix makes \(sizes) = \(shown) combinations; at most \(limit)")
            return [[]]
        }
        var combinations: [[(name: String, value: String)]] = [[]]
        for dimension in dimensions {
            combinations = combinations.flatMap { prefix in dimension.values.map { prefix + [(dimension.name, $0)] } }
        }
        return combinations
    }

    static func yamlError(_ error: YamlError, file: String) -> ScenarioError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let text = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return ScenarioError(SourceLocation(file: file, line: mark.line, column: mark.column), "invalid YAML: \(text)")
        case .reader(let problem, _, _, _):
            return ScenarioError(SourceLocation(file: file, line: 1, column: 1), "invalid YAML: \(problem)")
        default:
            return ScenarioError(SourceLocation(file: file, line: 1, column: 1), "invalid YAML: \(error)")
        }
    }
}
