/// `limits:` a testcase's kernel and resource limits, applied inside its private namespaces before any worker
/// starts (docs/scenario-format.md, "limits"): System V limits of its IPC namespace, the size of its private
/// /dev/shm, and the workers' RLIMIT_NOFILE. A testcase with limits runs only when isolated (root, `run`'s
/// default there); elsewhere it is skipped with the reason, since the machine's own limits are not the run's
/// to change.
public struct TestcaseLimits: Sendable, Equatable {
    /// `kernel.shmmax`: the largest System V segment, in bytes.
    public var shmmax: Int?
    /// `kernel.shmmni`: how many System V segments the namespace may hold.
    public var shmmni: Int?
    /// `kernel.sem`: SEMMSL (semaphores per set), SEMMNS (in all sets), SEMOPM (operations per semop), SEMMNI
    /// (sets).
    public var sem: [Int]?
    /// The size of the private /dev/shm (a tmpfs `size=` option), in bytes.
    public var devShmSize: Int?
    /// The workers' soft RLIMIT_NOFILE: the lowest descriptor number a worker cannot open.
    public var nofile: Int?

    public init(shmmax: Int? = nil, shmmni: Int? = nil, sem: [Int]? = nil, devShmSize: Int? = nil, nofile: Int? = nil) {
        self.shmmax = shmmax
        self.shmmni = shmmni
        self.sem = sem
        self.devShmSize = devShmSize
        self.nofile = nofile
    }

    /// The `/proc/sys` files to write in the testcase's IPC namespace, with their contents.
    public var sysctls: [(name: String, value: String)] {
        var out: [(String, String)] = []
        if let shmmax { out.append(("kernel.shmmax", "\(shmmax)")) }
        if let shmmni { out.append(("kernel.shmmni", "\(shmmni)")) }
        if let sem { out.append(("kernel.sem", sem.map(String.init).joined(separator: " "))) }
        return out
    }

    /// The limits as report properties (`limit.kernel.shmmax` = 65536, ...), in a fixed order.
    public var properties: [(name: String, value: String)] {
        sysctls.map { ("limit.\($0.name)", $0.value) }
            + (devShmSize.map { [("limit.dev_shm_size", "\($0)")] } ?? [])
            + (nofile.map { [("limit.nofile", "\($0)")] } ?? [])
    }

    package static let keys = ["shmmax", "shmmni", "sem", "dev-shm-size", "nofile"]
    /// IPCMNI: the most segments or semaphore sets a namespace can have (without ipcmni_extend).
    package static let ipcMNI = 32768
    /// SEMMSL's ceiling in the kernel (SEMMSL).
    package static let semMSL = 32000
}

