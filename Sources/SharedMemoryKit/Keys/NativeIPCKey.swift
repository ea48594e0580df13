/// A native IPC key, as Qt's `QNativeIpcKey` models it: a backend type, the native key (a path for System V,
/// a name for POSIX) and, for keys derived from a legacy key, that legacy key.
///
/// Two keys are equal when type, native key *and* legacy key are equal, as in Qt; the hash covers the type
/// and native key only (Qt's `qHash`), which is consistent with that equality.
public struct NativeIPCKey: Hashable, Sendable, CustomStringConvertible {
    /// The backend a key addresses (Qt's `QNativeIpcKey::Type`).
    ///
    /// Values 1…255 are System V with that number as the `ftok()` project id; `systemV` is 0x51 (`'Q'`).
    public struct KeyType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The invalid type (`QNativeIpcKey::Type{}`).
        public static let invalid = KeyType(rawValue: 0)
        /// System V with Qt's `ftok()` project id `'Q'` (0x51).
        public static let systemV = KeyType(rawValue: 0x51)
        /// POSIX realtime: `shm_open()` and `sem_open()`.
        public static let posixRealtime = KeyType(rawValue: 0x100)
        /// Win32 named objects; never supported on this platform.
        public static let windows = KeyType(rawValue: 0x101)

        /// System V with a non-standard `ftok()` project id (1…255).
        public static func systemV(projectID: UInt8) -> KeyType { KeyType(rawValue: UInt16(projectID)) }

        /// Qt's `QNativeIpcKey::DefaultTypeForOs` on Linux: POSIX realtime.
        public static let defaultForOS = KeyType.posixRealtime
        /// Qt's `QNativeIpcKey::legacyDefaultTypeForOs()` on Linux: System V. Legacy keys use it.
        public static let legacyDefaultForOS = KeyType.systemV

        /// A System V type: 1…255.
        public var isSystemV: Bool { rawValue >= 1 && rawValue <= 0xFF }
        /// The `ftok()` project id of a System V type.
        public var projectID: Int32? { isSystemV ? Int32(rawValue) : nil }
        /// Whether this platform has the backend (System V and POSIX on Linux).
        public var isSupported: Bool { isSystemV || self == .posixRealtime }

        /// The scheme of Qt's string form: `systemv`, `systemv-N`, `posix`, `windows`; nil for other values.
        public var scheme: String? {
            switch rawValue {
            case 0x51: "systemv"
            case 1...0xFF: "systemv-\(rawValue)"
            case 0x100: "posix"
            case 0x101: "windows"
            default: nil
            }
        }

        public var description: String { scheme ?? "invalid(\(rawValue))" }
    }

    /// The backend.
    public var type: KeyType
    /// The key the operating system sees: a file path (System V) or an object name (POSIX).
    /// Setting it clears ``legacyKey``, as `QNativeIpcKey::setNativeKey()` does.
    public var nativeKey: String {
        didSet { legacyKey = nil }
    }
    /// The legacy key this key was derived from, if any (see ``legacy(_:type:kind:)``).
    public private(set) var legacyKey: String?

    /// A key from a native key string. The default type is Qt's default for the OS (POSIX realtime).
    public init(_ nativeKey: String = "", type: KeyType = .defaultForOS) {
        self.type = type
        self.nativeKey = nativeKey
        self.legacyKey = nil
    }

    init(type: KeyType, nativeKey: String, legacyKey: String?) {
        self.type = type
        self.nativeKey = nativeKey
        self.legacyKey = legacyKey
    }

    /// `QNativeIpcKey::isValid()`: only the type is checked.
    public var isValid: Bool { type != .invalid }
    /// `QNativeIpcKey::isEmpty()`: the native key is empty.
    public var isEmpty: Bool { nativeKey.isEmpty }

    public static func == (lhs: NativeIPCKey, rhs: NativeIPCKey) -> Bool {
        lhs.type == rhs.type && lhs.nativeKey == rhs.nativeKey && lhs.legacyKey == rhs.legacyKey
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(nativeKey)
    }

    /// Qt's string form; a key too long to name any object is abbreviated (see ``boundedDescription``).
    public var description: String { boundedDescription }
}
