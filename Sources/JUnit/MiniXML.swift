/// A small, strict, non-validating XML 1.0 parser for reading JUnit reports (`report merge`, `report summary`).
///
/// Why not FoundationXML's XMLParser: on Linux it links libxml2 into the `shm-harness` binary (a runtime
/// dependency the harness does not otherwise have), and it processes DTDs. JUnit reports need none of that:
/// elements, attributes, text, CDATA, comments and processing instructions. This parser accepts exactly that,
/// in UTF-8, and refuses a DOCTYPE (so no entity expansion, no external entities), characters XML forbids,
/// malformed UTF-8, and nesting deeper than `maxDepth`. Every error carries the line and column (columns count
/// characters, from 1) where the problem is.
public enum MiniXML {
    public struct Element: Sendable {
        public var name: String
        public var attributes: [(name: String, value: String)]
        public var children: [Element]
        /// The element's own text (character data and CDATA), children's text excluded.
        public var text: String
        public var line: Int
        public var column: Int

        public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }
        public func children(named name: String) -> [Element] { children.filter { $0.name == name } }
    }

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var message: String
        public var description: String { "\(line):\(column): \(message)" }
    }

    public static let maxDepth = 256

    /// Parses a whole document; returns its root element.
    public static func parse(_ bytes: [UInt8]) throws(SyntaxError) -> Element {
        var parser = Parser(normalizingLineEnds(bytes))
        return try parser.document()
    }

    /// XML's end-of-line handling: CR LF and a lone CR become LF.
    static func normalizingLineEnds(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(13) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == 13 {
                out.append(10)
                if index + 1 < bytes.count && bytes[index + 1] == 10 { index += 1 }
            } else {
                out.append(bytes[index])
            }
            index += 1
        }
        return out
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0
        var line = 1
        var column = 1

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }
        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        func error(_ message: String) -> SyntaxError { SyntaxError(line: line, column: column, message: message) }

        mutating func advance() {
            let byte = bytes[index]
            index += 1
            if byte == 10 {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }

        mutating func advance(_ count: Int) { for _ in 0..<count { advance() } }

        func looking(at text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            return text.withUTF8Buffer { pattern in
                for offset in 0..<count where bytes[index + offset] != pattern[offset] { return false }
                return true
            }
        }

        mutating func skip(_ text: StaticString) -> Bool {
            guard looking(at: text) else { return false }
            advance(text.utf8CodeUnitCount)
            return true
        }

        mutating func expect(_ text: StaticString, _ what: String) throws(SyntaxError) {
            guard skip(text) else { throw error("expected \(what)") }
        }

        static func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 }

        mutating func skipSpace() -> Bool {
            var any = false
            while let byte = current, Self.isSpace(byte) {
                advance()
                any = true
            }
            return any
        }

        static func isNameStart(_ byte: UInt8) -> Bool {
            (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 95 || byte == 58 || byte >= 0x80
        }

        static func isNameByte(_ byte: UInt8) -> Bool {
            isNameStart(byte) || (byte >= 48 && byte <= 57) || byte == 45 || byte == 46
        }

        mutating func name() throws(SyntaxError) -> String {
            guard let first = current, Self.isNameStart(first) else { throw error("expected a name") }
            let start = index
            while let byte = current, Self.isNameByte(byte) { advance() }
            return try string(start..<index)
        }

        /// Decodes a slice as UTF-8, refusing malformed sequences and characters XML 1.0 forbids.
        func string(_ range: Range<Int>) throws(SyntaxError) -> String {
            // Fast path: no control character, no U+FFFE/U+FFFF (EF BF BE/BF), valid UTF-8.
            var suspicious = false
            var index = range.lowerBound
            while index < range.upperBound {
                let byte = bytes[index]
                if (byte < 0x20 && byte != 9 && byte != 10 && byte != 13)
                    || (byte == 0xEF && index + 2 < range.upperBound && bytes[index + 1] == 0xBF && bytes[index + 2] >= 0xBE) {
                    suspicious = true
                    break
                }
                index += 1
            }
            if !suspicious, let text = String(validating: bytes[range], as: UTF8.self) { return text }
            var result = ""
            var iterator = bytes[range].makeIterator()
            var decoder = UTF8()
            var offset = range.lowerBound
            loop: while true {
                switch decoder.decode(&iterator) {
                case .scalarValue(let scalar):
                    guard Self.isAllowed(scalar) else {
                        throw position(offset, "character U+\(String(scalar.value, radix: 16, uppercase: true)) is not allowed in XML")
                    }
                    result.unicodeScalars.append(scalar)
                    offset += UTF8.width(scalar)
                case .emptyInput: break loop
                case .error: throw position(offset, "malformed UTF-8 (only UTF-8 is read)")
                }
            }
            return result
        }

        /// An error at a byte offset before the current position (recounts lines and columns from the start).
        func position(_ offset: Int, _ message: String) -> SyntaxError {
            var line = 1
            var column = 1
            for byte in bytes[0..<min(offset, bytes.count)] {
                if byte == 10 {
                    line += 1
                    column = 1
                } else if byte & 0xC0 != 0x80 {
                    column += 1
                }
            }
            return SyntaxError(line: line, column: column, message: message)
        }

        static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.value {
            case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
            default: false
            }
        }

        mutating func document() throws(SyntaxError) -> Element {
            _ = skip("\u{FEFF}")
            if looking(at: "<?xml") && index + 5 < bytes.count && Self.isSpace(bytes[index + 5]) {
                try declaration()
            }
            try misc()
            if atEnd { throw error("no root element (the file is empty or holds only comments)") }
            if looking(at: "<!DOCTYPE") { throw error("a DOCTYPE is not accepted (JUnit reports have none)") }
            guard current == UInt8(ascii: "<") else { throw error("expected '<' (this is not XML)") }
            let root = try element(depth: 1)
            try misc()
            if !atEnd { throw error("content after the root element") }
            return root
        }

        /// `<?xml version="1.0" encoding="UTF-8"?>`: only UTF-8 (or its ASCII subset) is read.
        mutating func declaration() throws(SyntaxError) {
            let start = index
            advance(5)
            while !looking(at: "?>") {
                if atEnd { throw error("unterminated XML declaration") }
                advance()
            }
            let text = try string(start..<index)
            advance(2)
            let characters = Array(text)
            let word = Array("encoding")
            if let at = (0...max(0, characters.count - word.count)).first(where: { characters.count >= word.count && Array(characters[$0..<$0 + word.count]) == word }) {
                let rest = characters[(at + word.count)...].drop { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "'" }
                let encoding = String(rest.prefix { $0 != "\"" && $0 != "'" }).lowercased()
                if !["utf-8", "utf8", "us-ascii", "ascii"].contains(encoding) {
                    throw SyntaxError(line: 1, column: 1, message: "encoding \(encoding) is not supported (UTF-8 only)")
                }
            }
        }

        /// Comments, processing instructions and white space between top-level markup.
        mutating func misc() throws(SyntaxError) {
            while true {
                _ = skipSpace()
                if looking(at: "<!--") {
                    try comment()
                } else if looking(at: "<?") {
                    try processingInstruction()
                } else {
                    return
                }
            }
        }

        mutating func comment() throws(SyntaxError) {
            let start = (line, column)
            advance(4)
            while !skip("-->") {
                if atEnd { throw SyntaxError(line: start.0, column: start.1, message: "unterminated comment") }
                advance()
            }
        }

        mutating func processingInstruction() throws(SyntaxError) {
            let start = (line, column)
            advance(2)
            while !skip("?>") {
                if atEnd { throw SyntaxError(line: start.0, column: start.1, message: "unterminated processing instruction") }
                advance()
            }
        }

        mutating func element(depth: Int) throws(SyntaxError) -> Element {
            if depth > MiniXML.maxDepth { throw error("elements nested deeper than \(MiniXML.maxDepth)") }
            let startLine = line
            let startColumn = column
            advance()  // <
            let tag = try name()
            var element = Element(name: tag, attributes: [], children: [], text: "", line: startLine, column: startColumn)
            while true {
                let spaced = skipSpace()
                if skip("/>") { return element }
                if skip(">") { break }
                if atEnd { throw error("unterminated start tag <\(tag)>") }
                guard spaced else { throw error("expected white space, '>' or '/>' in <\(tag)>") }
                let attributeLine = line
                let attributeColumn = column
                let key = try name()
                _ = skipSpace()
                try expect("=", "'=' after attribute \(key)")
                _ = skipSpace()
                let value = try attributeValue()
                if element.attributes.contains(where: { $0.name == key }) {
                    throw SyntaxError(line: attributeLine, column: attributeColumn, message: "attribute \(key) appears twice in <\(tag)>")
                }
                element.attributes.append((key, value))
            }
            // content
            var text = ""
            while true {
                if atEnd { throw SyntaxError(line: startLine, column: startColumn, message: "<\(tag)> is never closed") }
                if looking(at: "</") {
                    let closeLine = line
                    let closeColumn = column
                    advance(2)
                    let closing = try name()
                    _ = skipSpace()
                    try expect(">", "'>' to end </\(closing)>")
                    guard closing == tag else {
                        throw SyntaxError(line: closeLine, column: closeColumn, message: "</\(closing)> closes <\(tag)> (opened at \(startLine):\(startColumn))")
                    }
                    element.text = text
                    return element
                } else if looking(at: "<!--") {
                    try comment()
                } else if looking(at: "<![CDATA[") {
                    let cdataLine = line
                    let cdataColumn = column
                    advance(9)
                    let start = index
                    while !looking(at: "]]>") {
                        if atEnd { throw SyntaxError(line: cdataLine, column: cdataColumn, message: "unterminated CDATA section") }
                        advance()
                    }
                    text += try string(start..<index)
                    advance(3)
                } else if looking(at: "<?") {
                    try processingInstruction()
                } else if looking(at: "<!") {
                    throw error("unexpected markup '<!' (a DOCTYPE or declaration is not accepted here)")
                } else if current == UInt8(ascii: "<") {
                    element.children.append(try self.element(depth: depth + 1))
                } else {
                    text += try characters(until: UInt8(ascii: "<"), inAttribute: false)
                }
            }
        }

        mutating func attributeValue() throws(SyntaxError) -> String {
            guard let quote = current, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else {
                throw error("expected a quoted attribute value")
            }
            advance()
            let value = try characters(until: quote, inAttribute: true)
            if atEnd { throw error("unterminated attribute value") }
            advance()
            return value
        }

        /// Character data up to `stop` (not consumed), with references resolved. In an attribute, literal
        /// white space becomes a space (XML's attribute-value normalization) and '<' is an error.
        mutating func characters(until stop: UInt8, inAttribute: Bool) throws(SyntaxError) -> String {
            var out = ""
            var start = index
            while let byte = current, byte != stop {
                if byte == UInt8(ascii: "&") {
                    out += try string(start..<index)
                    out.unicodeScalars.append(try reference())
                    start = index
                } else if inAttribute && byte == UInt8(ascii: "<") {
                    throw error("'<' in an attribute value")
                } else if inAttribute && (byte == 9 || byte == 10) {
                    out += try string(start..<index)
                    out += " "
                    advance()
                    start = index
                } else {
                    advance()
                }
            }
            out += try string(start..<index)
            return out
        }

        /// `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` `&#N;` `&#xH;`.
        mutating func reference() throws(SyntaxError) -> Unicode.Scalar {
            let startLine = line
            let startColumn = column
            func fail(_ message: String) -> SyntaxError { SyntaxError(line: startLine, column: startColumn, message: message) }
            advance()  // &
            let start = index
            while let byte = current, byte != UInt8(ascii: ";") {
                if index - start > 12 || Self.isSpace(byte) || byte == UInt8(ascii: "<") || byte == UInt8(ascii: "&") {
                    throw fail("'&' starts no reference (write &amp;)")
                }
                advance()
            }
            if atEnd { throw fail("unterminated reference") }
            let body = String(decoding: bytes[start..<index], as: UTF8.self)
            advance()  // ;
            switch body {
            case "lt": return "<"
            case "gt": return ">"
            case "amp": return "&"
            case "quot": return "\""
            case "apos": return "'"
            default: break
            }
            var value: UInt32?
            if body.hasPrefix("#x") {
                value = UInt32(body.dropFirst(2), radix: 16)
            } else if body.hasPrefix("#") {
                value = UInt32(body.dropFirst(), radix: 10)
            } else {
                throw fail("unknown entity &\(body); (only the five XML entities and character references are read)")
            }
            guard let value, let scalar = Unicode.Scalar(value), Self.isAllowed(scalar) else {
                throw fail("&\(body); is not a character XML allows")
            }
            return scalar
        }
    }
}
