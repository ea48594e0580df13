import SystemPackage

/// The error every operation of the library throws.
///
/// It mirrors Qt's `QSharedMemory::SharedMemoryError` (and `QSystemSemaphore::SystemSemaphoreError`), adds the
/// codes the file-backed and in-memory locks need, and always says which operation failed, on which object,
/// through which system call, with which `errno`:
///
///     attach: shmget(key 0x5102f3a1): permission-denied (EACCES: Permission denied) [systemv:/tmp/qipc_…]
public struct SharedMemoryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, in Qt's vocabulary. Extensible: new codes do not break a `switch` with `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible, CaseIterable {
        enum Storage: Int, CaseIterable, Sendable {
            case permissionDenied = 1, invalidSize, keyError, alreadyExists, notFound, lockError, outOfResources
            case busy, sealed, busError, ownerDied, unknown
        }
        let storage: Storage

        public static var permissionDenied: Code { Code(storage: .permissionDenied) }
        public static var invalidSize: Code { Code(storage: .invalidSize) }
        public static var keyError: Code { Code(storage: .keyError) }
        public static var alreadyExists: Code { Code(storage: .alreadyExists) }
        public static var notFound: Code { Code(storage: .notFound) }
        public static var lockError: Code { Code(storage: .lockError) }
        public static var outOfResources: Code { Code(storage: .outOfResources) }
        /// A try-lock found the lock taken.
        public static var busy: Code { Code(storage: .busy) }
        /// A seal on a memfd refused the operation.
        public static var sealed: Code { Code(storage: .sealed) }
        /// Mapped memory whose backing file was shrunk away.
        public static var busError: Code { Code(storage: .busError) }
        /// A robust mutex whose holder died: the caller holds the lock and must make the state consistent.
        public static var ownerDied: Code { Code(storage: .ownerDied) }
        public static var unknown: Code { Code(storage: .unknown) }

        public static var allCases: [Code] { Storage.allCases.map { Code(storage: $0) } }

        /// The scenario spelling (`permission-denied`), shared with the C harness and `expect-error:`.
        public var name: String {
            switch storage {
            case .permissionDenied: "permission-denied"
            case .invalidSize: "invalid-size"
            case .keyError: "key-error"
            case .alreadyExists: "already-exists"
            case .notFound: "not-found"
            case .lockError: "lock-error"
            case .outOfResources: "out-of-resources"
            case .busy: "busy"
            case .sealed: "sealed"
            case .busError: "bus-error"
            case .ownerDied: "owner-died"
            case .unknown: "unknown"
            }
        }

        /// The name of Qt's enumerator (`PermissionDenied`), where Qt has one.
        public var qtName: String {
            switch storage {
            case .permissionDenied: "PermissionDenied"
            case .invalidSize: "InvalidSize"
            case .keyError: "KeyError"
            case .alreadyExists: "AlreadyExists"
            case .notFound: "NotFound"
            case .lockError: "LockError"
            case .outOfResources: "OutOfResources"
            case .unknown: "UnknownError"
            case .busy: "LockError"
            case .sealed, .busError, .ownerDied: "UnknownError"
            }
        }

        /// Looks a code up by its scenario spelling.
        public init?(name: String) {
            guard let match = Storage.allCases.first(where: { Code(storage: $0).name == name }) else { return nil }
            storage = match
        }

        init(storage: Storage) { self.storage = storage }

        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// The library operation that failed: `create`, `attach`, `detach`, `lock`, `acquire`, ...
    public let operation: String
    /// The system call that failed (`shmget`, `sem_open`), or nil when the library itself refused.
    public let call: String?
    /// The C error, when a system call failed.
    public let underlyingError: Errno?
    /// The object: Qt's string form of its key, or a path.
    public let object: String?
    /// More context: the IPC key in hex, a size, the reason for a refusal.
    public let detail: String?

    public init(
        _ code: Code, operation: String, call: String? = nil, underlyingError: Errno? = nil,
        object: String? = nil, detail: String? = nil
    ) {
        self.code = code
        self.operation = operation
        self.call = call
        self.underlyingError = underlyingError
        self.object = object
        self.detail = detail
    }

    public var description: String {
        var text = operation + ": "
        if let call {
            text += call
            if let detail { text += "(\(detail))" }
            text += ": "
        } else if let detail {
            text += detail + ": "
        }
        text += code.name
        if let underlyingError {
            text += " (\(ErrnoNames.symbol(underlyingError)): \(underlyingError.description))"
        }
        if let object { text += " [\(object)]" }
        return text
    }

    /// The same error, said to have happened during `operation` (keeps the call, errno and object).
    func during(_ operation: String) -> SharedMemoryError {
        SharedMemoryError(
            code, operation: operation, call: call, underlyingError: underlyingError, object: object, detail: detail)
    }
}
