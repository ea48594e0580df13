import Yams
extension Interpreter {
    /// `limits: {shmmax: 1MiB, shmmni: 8, sem: [250, 32000, 32, 128], dev-shm-size: 1MiB, nofile: 32}`.
    mutating func testcaseLimits(_ node: Node) -> TestcaseLimits? {
        guard let entries = reader.mapping(node, "limits", allowed: TestcaseLimits.keys) else { return nil }
        if entries.isEmpty { reader.fail(node, "limits: names at least one of: \(TestcaseLimits.keys.joined(separator: ", "))") }
        var limits = TestcaseLimits()
        for entry in entries {
            switch entry.key {
            case "shmmax":
                if let size = reader.size(entry.value, "limits.shmmax") {
                    if size < 1 { reader.fail(entry.value, "limits.shmmax must be at least 1 byte") } else { limits.shmmax = size }
                }
            case "shmmni":
                limits.shmmni = reader.int(entry.value, "limits.shmmni", range: 1...TestcaseLimits.ipcMNI)
            case "sem":
                limits.sem = semaphoreLimits(entry.value)
            case "dev-shm-size":
                // tmpfs takes size=0 as "no limit": the smallest size that limits is a page.
                if let size = reader.size(entry.value, "limits.dev-shm-size") {
                    if size < 4096 || size > 1 << 50 {
                        reader.fail(entry.value, "limits.dev-shm-size must be in 4KiB...1PiB (tmpfs takes 0 as no limit), not \(size)")
                    } else {
                        limits.devShmSize = size
                    }
                }
            default:
                // Below 3 not even standard input, output and error fit; the kernel's nr_open default is 2^20.
                limits.nofile = reader.int(entry.value, "limits.nofile", range: 3...(1 << 20))
            }
        }
        return limits
    }

    /// `sem: [SEMMSL, SEMMNS, SEMOPM, SEMMNI]`, as `kernel.sem` lists them.
    private mutating func semaphoreLimits(_ node: Node) -> [Int]? {
        guard case .sequence(let sequence) = node, sequence.count == 4 else {
            reader.fail(node, "limits.sem is a list of four numbers, as kernel.sem: [SEMMSL, SEMMNS, SEMOPM, SEMMNI] (e.g. [250, 32000, 32, 128])")
            return nil
        }
        let names = ["SEMMSL", "SEMMNS", "SEMOPM", "SEMMNI"]
        let ranges = [1...TestcaseLimits.semMSL, 1...Int(Int32.max), 1...Int(Int32.max), 1...TestcaseLimits.ipcMNI]
        var values: [Int] = []
        for (index, item) in sequence.enumerated() {
            guard let value = reader.int(item, "limits.sem's \(names[index])", range: ranges[index]) else { continue }
            values.append(value)
        }
        return values.count == 4 ? values : nil
    }
}
