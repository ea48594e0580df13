import SystemPackage

extension CallSite {
    /// An error for a failed call, mapped with a per-call-site ``ErrnoMapping/Refinement``.
    func error(
        _ call: String, _ error: Errno, refinement: ErrnoMapping.Refinement,
        einval: SharedMemoryError.Code = .unknown, detail: String? = nil
    ) -> SharedMemoryError {
        SharedMemoryError(
            ErrnoMapping.code(for: error, refinement: refinement, einval: einval), operation: operation, call: call,
            underlyingError: error, object: object, detail: detail)
    }

    /// Runs `body` through ``valueOrErrno(retryOnInterrupt:_:)`` and throws an error mapped with `refinement`.
    @inline(__always)
    func check<I: FixedWidthInteger>(
        _ call: String, refinement: ErrnoMapping.Refinement, einval: SharedMemoryError.Code = .unknown,
        detail: String? = nil, retryOnInterrupt: Bool = true, _ body: () -> I
    ) throws(SharedMemoryError) -> I {
        switch valueOrErrno(retryOnInterrupt: retryOnInterrupt, body) {
        case .success(let value): return value
        case .failure(let err): throw error(call, err, refinement: refinement, einval: einval, detail: detail)
        }
    }
}

/// Nanoseconds in a `Duration`, clamped to `0...Int64.max`.
func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return Int64.max }
    let (total, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
    return overflow2 ? Int64.max : total
}
