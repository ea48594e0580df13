import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

// The only place in the library that reads `errno`. Nothing may allocate between a call and the read.

/// Runs a call that returns -1 and sets errno on failure; retries EINTR unless told not to.
@inline(__always)
func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ body: () -> I) -> Result<I, Errno> {
    while true {
        let result = body()
        if result != -1 { return .success(result) }
        let error = Errno(rawValue: errno)
        if retryOnInterrupt && error == .interrupted { continue }
        return .failure(error)
    }
}

/// Runs a call that returns NULL and sets errno on failure (the shim turns `MAP_FAILED`, `SEM_FAILED` and
/// `(void *)-1` into NULL).
@inline(__always)
func pointerOrErrno<P>(_ body: () -> P?) -> Result<P, Errno> {
    if let pointer = body() { return .success(pointer) }
    return .failure(Errno(rawValue: errno))
}

/// Where a failing call happened, so that every error names the operation and the object.
///
/// Building one costs nothing on the hot path: the operation is a literal and the object is kept as it was
/// given (a key is rendered with `QNativeIpcKey::toString()` only when an error is made), so a successful
/// lock, unlock, acquire or release allocates nothing.
struct CallSite: Sendable {
    var operation: String
    private var source: ObjectSource

    /// The object as it was given; rendered to text only for an error.
    enum ObjectSource: Sendable {
        case none
        case text(String)
        case key(NativeIPCKey)
    }

    init(operation: String, object: String? = nil) {
        self.operation = operation
        source = object.map(ObjectSource.text) ?? .none
    }

    /// A call site whose object is a key, rendered lazily.
    init(operation: String, key: NativeIPCKey) {
        self.operation = operation
        source = .key(key)
    }

    /// The object's text (Qt's string form of a key, or a path): built on each use, so only for errors.
    var object: String? {
        switch source {
        case .none: nil
        case .text(let text): text
        case .key(let key): key.description
        }
    }

    func error(
        _ call: String, _ error: Errno, einval: SharedMemoryError.Code = .unknown, detail: String? = nil
    ) -> SharedMemoryError {
        SharedMemoryError(
            ErrnoMapping.code(for: error, einval: einval), operation: operation, call: call,
            underlyingError: error, object: object, detail: detail)
    }

    func refusal(_ code: SharedMemoryError.Code, _ reason: String) -> SharedMemoryError {
        SharedMemoryError(code, operation: operation, object: object, detail: reason)
    }

    /// Runs `body` through ``valueOrErrno(retryOnInterrupt:_:)`` and throws a mapped error on failure.
    @inline(__always)
    func check<I: FixedWidthInteger>(
        _ call: String, einval: SharedMemoryError.Code = .unknown, detail: String? = nil,
        retryOnInterrupt: Bool = true, _ body: () -> I
    ) throws(SharedMemoryError) -> I {
        switch valueOrErrno(retryOnInterrupt: retryOnInterrupt, body) {
        case .success(let value): return value
        case .failure(let err): throw error(call, err, einval: einval, detail: detail)
        }
    }

    @inline(__always)
    func checkPointer<P>(
        _ call: String, einval: SharedMemoryError.Code = .unknown, detail: String? = nil, _ body: () -> P?
    ) throws(SharedMemoryError) -> P {
        switch pointerOrErrno(body) {
        case .success(let value): return value
        case .failure(let err): throw error(call, err, einval: einval, detail: detail)
        }
    }
}
