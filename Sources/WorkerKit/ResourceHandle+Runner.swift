import SharedMemoryKit

// What the runner (Harness, another module) needs of the resource handles beyond the worker's use.

extension ResourceHandle {
    /// The runner's own memfd handle: it made the memfd, and the workers inherit its descriptor.
    package static func runnersMemFD(_ spec: Plan.Resource, memfd: MemFD) -> ResourceHandle { MemFDHandle(spec, memfd: memfd) }

    /// A memfd's handle (a fresh handle cannot reach the memfd: the runner's own one is used).
    package var isMemFD: Bool { self is MemFDHandle }
}

extension StepFailure {
    package init(line: Int, step: String, error: String, message: String, errno: Int32?, _: PackageAccess = .memberwise) {
        self.line = line
        self.step = step
        self.error = error
        self.message = message
        self.errno = errno
    }
}
