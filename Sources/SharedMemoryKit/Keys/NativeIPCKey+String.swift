// Qt's string form of a native key: `<scheme>:<path>[?legacyKey=<legacy key>]`, as
// `QNativeIpcKey::toString()` writes it and `QNativeIpcKey::fromString()` reads it. Qt builds and parses it
// with QUrl in tolerant mode; this file reproduces exactly the part of QUrl that those two functions reach,
// checked against vectors recorded from Qt 6.12 (Tests/SharedMemoryKitTests/Resources/qt-key-vectors.json).

extension NativeIPCKey {
    /// Qt's `QNativeIpcKey::toString()`; nil (Qt's null string) for a type that has no scheme.
    public func toString() -> String? {
        guard let scheme = type.scheme else { return nil }
        var text = scheme + ":" + URLText.encodePath(nativeKey)
        if let legacyKey {
            text += "?legacyKey=" + URLText.encode(legacyKey, extra: URLText.queryEscapes)
        }
        return text
    }

    /// Qt's `QNativeIpcKey::fromString()`: nil where Qt's result is invalid (type 0).
    public init?(string text: String) {
        guard let url = URLText.Parts(text), let type = KeyType(scheme: url.scheme) else { return nil }
        guard url.authority == nil || url.authority == "" else { return nil }
        var legacyKey: String?
        if let query = url.query {
            for item in query.split(separator: "&", omittingEmptySubsequences: true) {
                let name: Substring
                let value: Substring
                if let eq = item.firstIndex(of: "=") {
                    name = item[..<eq]
                    value = item[item.index(after: eq)...]
                } else {
                    name = item
                    value = ""
                }
                guard URLText.decode(name) == "legacyKey" else { return nil }
                legacyKey = URLText.decode(value)
            }
        }
        self.init(type: type, nativeKey: URLText.decode(url.path[...]), legacyKey: legacyKey)
    }
}

extension NativeIPCKey.KeyType {
    /// Parses a lowercased scheme: `systemv`, `systemv-N` (N = 1…255, leading zeros allowed), `posix`, `windows`.
    init?(scheme: String) {
        switch scheme {
        case "systemv": self = .systemV
        case "posix": self = .posixRealtime
        case "windows": self = .windows
        default:
            // Qt reads the suffix after "systemv" as a signed decimal number that must be -1…-255.
            guard scheme.hasPrefix("systemv-") else { return nil }
            let digits = scheme.dropFirst("systemv-".count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(digits), (1...0xFF).contains(value)
            else { return nil }
            self.init(rawValue: UInt16(value))
        }
    }
}

/// The subset of QUrl (tolerant mode) that Qt's key strings use.
enum URLText {
    /// Characters QUrl escapes in a query besides control characters and `%`.
    static let queryEscapes: Set<UInt8> = [UInt8(ascii: "#"), UInt8(ascii: "&"), UInt8(ascii: "=")]
    /// Characters QUrl escapes in a path besides control characters and `%`.
    static let pathEscapes: Set<UInt8> = [UInt8(ascii: "#"), UInt8(ascii: "?")]

    /// toString's path: `%` is escaped first, a leading `//` becomes `/%2F`, then QUrl's path escapes.
    static func encodePath(_ key: String) -> String {
        var text = encode(key, extra: pathEscapes)
        if text.hasPrefix("//") {
            text = "/%2F" + text.dropFirst(2)
        }
        return text
    }

    /// Percent-encodes control characters (0x01–0x1F, 0x7F), `%` and `extra`; keeps everything else,
    /// non-ASCII included, as QUrl's `toString(DecodeReserved)` does.
    static func encode(_ text: String, extra: Set<UInt8>) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                let byte = UInt8(scalar.value)
                if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "%") || extra.contains(byte) {
                    out += percent(byte)
                    continue
                }
            }
            out.unicodeScalars.append(scalar)
        }
        return out
    }

    static func percent(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "%" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }

    /// Fully decodes `%XX` escapes; a `%` not followed by two hex digits stays literal (tolerant mode).
    /// Decoded bytes that are not valid UTF-8 become U+FFFD.
    static func decode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count,
                let high = hexValue(utf8[i + 1]), let low = hexValue(utf8[i + 2])
            {
                bytes.append(high << 4 | low)
                i += 3
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A URL split as RFC 3986 (and QUrl) does: scheme, optional authority, path, optional query.
    /// The fragment is dropped (Qt ignores it).
    struct Parts {
        var scheme: String
        var authority: String?
        var path: String
        var query: String?

        init?(_ text: String) {
            guard let colon = text.firstIndex(of: ":") else { return nil }
            let scheme = text[..<colon]
            guard let first = scheme.first, first.isASCII, first.isLetter,
                scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
            else { return nil }
            self.scheme = scheme.lowercased()
            var rest = text[text.index(after: colon)...]
            if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
            if let question = rest.firstIndex(of: "?") {
                query = String(rest[rest.index(after: question)...])
                rest = rest[..<question]
            } else {
                query = nil
            }
            if rest.hasPrefix("//") {
                let afterSlashes = rest.dropFirst(2)
                let end = afterSlashes.firstIndex(of: "/") ?? afterSlashes.endIndex
                authority = String(afterSlashes[..<end])
                rest = afterSlashes[end...]
            } else {
                authority = nil
            }
            path = String(rest)
        }
    }
}
