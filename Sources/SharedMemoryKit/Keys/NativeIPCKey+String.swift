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
        // Qt refuses userinfo, a host or a port; empty ones (`posix://@:/x`) are allowed.
        if let authority = url.authority, !URLText.isEmptyAuthority(authority) { return nil }
        var legacyKey: String?
        if let query = url.query, !query.isEmpty {
            // QUrlQuery: items split at `&` (empty items included, but not after a trailing `&`), name and value at the first `=`, each then
            // decoded, unless a stray `%` makes the whole query literal (tolerant mode).
            let literal = URLText.hasStrayPercent(query)
            func decode(_ part: Substring.UnicodeScalarView) -> String {
                let text = String(String.UnicodeScalarView(part))
                return literal ? text : URLText.decodeComponent(text)
            }
            var items = query.unicodeScalars.split(separator: "&", omittingEmptySubsequences: false)
            if items.count > 1 && items.last!.isEmpty { items.removeLast() }  // a trailing `&` ends the last item
            for item in items {
                let name: Substring.UnicodeScalarView
                let value: Substring.UnicodeScalarView
                if let eq = item.firstIndex(of: "=") {
                    name = item[..<eq]
                    value = item[item.index(after: eq)...]
                } else {
                    name = item
                    value = Substring.UnicodeScalarView()
                }
                guard decode(name) == "legacyKey" else { return nil }
                legacyKey = decode(value)
            }
        }
        // An empty legacy key is no legacy key (Qt cannot tell them apart either).
        if legacyKey?.isEmpty == true { legacyKey = nil }
        self.init(type: type, nativeKey: URLText.decodeComponent(url.path), legacyKey: legacyKey)
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

    /// Whether a `%` in `text` is not followed by two hex digits. QUrl's tolerant mode then takes every `%` of
    /// that component literally.
    static func hasStrayPercent(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%") {
                guard i + 2 < utf8.count, hexValue(utf8[i + 1]) != nil, hexValue(utf8[i + 2]) != nil else { return true }
                i += 3
            } else {
                i += 1
            }
        }
        return false
    }

    /// QUrl's tolerant-mode decoding of one component: if a `%` is stray, every `%` in the component is literal;
    /// otherwise `%XX` escapes are decoded. Decoded bytes are read as UTF-8 the way Qt does: each byte of an invalid
    /// sequence becomes U+FFFD.
    static func decodeComponent(_ text: String) -> String {
        if hasStrayPercent(text) { return text }
        let utf8 = Array(text.utf8)
        var i = 0
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), let high = hexValue(utf8[i + 1]), let low = hexValue(utf8[i + 2]) {
                bytes.append(high << 4 | low)
                i += 3
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return decodeUTF8LikeQt(bytes)
    }

    /// UTF-8 → String where every byte that does not start a valid, shortest-form, non-surrogate sequence
    /// becomes one U+FFFD (Qt's `QString::fromUtf8`); Swift's decoder would merge some of them.
    static func decodeUTF8LikeQt(_ bytes: [UInt8]) -> String {
        var scalars = String.UnicodeScalarView()
        var i = 0
        func continuation(_ at: Int) -> UInt32? {
            guard at < bytes.count, bytes[at] & 0xC0 == 0x80 else { return nil }
            return UInt32(bytes[at] & 0x3F)
        }
        while i < bytes.count {
            let lead = bytes[i]
            var value: UInt32?
            var length = 1
            switch lead {
            case 0x00...0x7F:
                value = UInt32(lead)
            case 0xC2...0xDF:
                if let c1 = continuation(i + 1) { value = UInt32(lead & 0x1F) << 6 | c1; length = 2 }
            case 0xE0...0xEF:
                if let c1 = continuation(i + 1), let c2 = continuation(i + 2) {
                    let v = UInt32(lead & 0x0F) << 12 | c1 << 6 | c2
                    if v >= 0x800 && !(0xD800...0xDFFF).contains(v) { value = v; length = 3 }
                }
            case 0xF0...0xF4:
                if let c1 = continuation(i + 1), let c2 = continuation(i + 2), let c3 = continuation(i + 3) {
                    let v = UInt32(lead & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
                    if (0x10000...0x10FFFF).contains(v) { value = v; length = 4 }
                }
            default:
                break
            }
            if let value, let scalar = Unicode.Scalar(value) {
                scalars.append(scalar)
                i += length
            } else {
                scalars.append("\u{FFFD}")
                i += 1
            }
        }
        return String(scalars)
    }

    /// An authority with no userinfo, host or port in it (`""`, `@`, `:`, `@:`).
    static func isEmptyAuthority(_ authority: String) -> Bool {
        var rest = Substring(authority)
        if let at = rest.lastIndex(of: "@") { guard rest[..<at].isEmpty else { return false }; rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix(":") { rest = rest.dropFirst() }
        return rest.isEmpty
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
    /// The fragment is dropped (Qt ignores it). Works on Unicode scalars, not Characters: a combining mark or
    /// a joiner after a delimiter must not hide it.
    struct Parts {
        var scheme: String
        var authority: String?
        var path: String
        var query: String?

        init?(_ text: String) {
            let scalars = Array(text.unicodeScalars)
            guard let colon = scalars.firstIndex(of: ":"), colon > 0 else { return nil }
            let scheme = scalars[..<colon]
            guard Self.isLetter(scheme.first!),
                scheme.allSatisfy({ Self.isLetter($0) || ("0"..."9").contains($0) || "+-.".unicodeScalars.contains($0) })
            else { return nil }
            self.scheme = String(String.UnicodeScalarView(scheme)).lowercased()
            var rest = scalars[(colon + 1)...]
            if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
            if let question = rest.firstIndex(of: "?") {
                query = String(String.UnicodeScalarView(rest[(question + 1)...]))
                rest = rest[..<question]
            } else {
                query = nil
            }
            if rest.starts(with: ["/", "/"]) {
                let afterSlashes = rest.dropFirst(2)
                let end = afterSlashes.firstIndex(of: "/") ?? afterSlashes.endIndex
                authority = String(String.UnicodeScalarView(afterSlashes[..<end]))
                rest = afterSlashes[end...]
            } else {
                authority = nil
            }
            path = String(String.UnicodeScalarView(rest))
        }

        static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
        }
    }
}
