import CBench
import Harness
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

// The runner's and the workers' cases of `shm-harness bench` (issue 11): the runner's fixed start-up, a
// worker's start-up, the runner's extra cost per worker, the attach storm, and the step interpreter. Each runs
// real processes (this executable's `run`, the workers beside it) against posix_spawn of a trivial program.

extension BenchCase {
    static func runnerCases(quick: Bool) -> [BenchCase] {
        var cases = [workerStartup(), runnerStartup(), runnerStartup(cpu: true)]
        for count in quick ? [] : [64, 256] {
            for impl in ["swift", "c", "exec"] { cases.append(runnerPerWorker(impl: impl, workers: count)) }
        }
        for impl in ["swift", "c", "exec"] { cases.append(runnerPerWorker(impl: impl, workers: 64, cpu: true)) }
        for count in quick ? [64] : [64, 256, 1024] { cases.append(attachStorm(workers: count)) }
        cases.append(stepInterpreter(quick: quick))
        return cases
    }

    /// `shm-harness run` of a 1-worker scenario, isolated and not, against posix_spawn of /bin/true.
    /// With `cpu`: the CPU time of the run and everything it started (user + system).
    static func runnerStartup(cpu: Bool = false) -> BenchCase {
        BenchCase(
            name: cpu ? "runner-cpu-startup" : "runner-startup",
            summary: "shm-harness run of a 1-worker scenario (impl: c) vs posix_spawn of /bin/true\(cpu ? ", CPU time" : "")", unit: "run", crossProcess: true
        ) {
            let work = try BenchWork()
            let scenario = try work.scenario("one", workers: 1, impl: "c")
            let plain = BenchVariant(label: "run --no-isolate", role: .library, measure: { _ in try work.run(scenario, isolate: false, cpu: cpu) }, fixedOperations: 1)
            let isolated = BenchVariant(label: "run --isolate", role: .library, measure: { _ in try work.run(scenario, isolate: true, cpu: cpu) }, fixedOperations: 1)
            let floor = BenchVariant(label: "posix_spawn /bin/true", role: .floor, measure: { _ in try BenchSpawn.many("/bin/true", [], count: 1, cpu: cpu) }, fixedOperations: 1)
            var unavailable: [(String, BenchVariant.Role, String)] = []
            var variants = [plain, floor]
            if geteuid() == 0 { variants.insert(isolated, at: 1) } else { unavailable.append(("run --isolate", .library, "namespaces need root")) }
            return (variants, unavailable, ["the run's JUnit report, leak check `own`, no Qt"], { work.remove() })
        }
    }

    /// One worker process running a 1-step plan: the lean Swift worker, the C worker, and the whole
    /// `shm-harness worker` (what impl: swift started before), against /bin/true.
    static func workerStartup() -> BenchCase {
        BenchCase(name: "worker-startup", summary: "a worker process with a 1-step plan, start to exit, vs posix_spawn of /bin/true", unit: "worker", crossProcess: true) {
            let work = try BenchWork()
            let plan = try work.file("one.plan", "shm-harness-plan 1\nfile bench\nworker w 0 1\nstep 1 sleep ns=0\nend\n")
            let beside = BenchWork.beside
            var variants = [
                BenchVariant(label: "shm-harness-worker", role: .library, measure: { _ in try BenchSpawn.many(beside("shm-harness-worker"), [plan], count: 1) }, fixedOperations: 1),
                BenchVariant(label: "shmh-worker (C)", role: .libshmh, measure: { _ in try BenchSpawn.many(beside("shmh-worker"), [plan], count: 1) }, fixedOperations: 1),
                BenchVariant(label: "posix_spawn /bin/true", role: .floor, measure: { _ in try BenchSpawn.many("/bin/true", [], count: 1) }, fixedOperations: 1),
            ]
            variants.append(BenchVariant(label: "shm-harness worker", role: .info, measure: { _ in try BenchSpawn.many(beside("shm-harness"), ["worker", plan], count: 1) }, fixedOperations: 1))
            return (variants, [], ["stdout and stderr to /dev/null; the worker reads the plan, runs `sleep 0`, writes its result line"], { work.remove() })
        }
    }

    /// (run of N workers − run of 1 worker) / (N − 1), against N posix_spawns of /bin/true / N.
    /// With `cpu`: the same in CPU time (the runner, its workers and /bin/true, user + system).
    static func runnerPerWorker(impl: String, workers: Int, cpu: Bool = false) -> BenchCase {
        BenchCase(
            name: "runner-\(cpu ? "cpu-" : "")per-worker-\(impl)-\(workers)",
            summary: "the runner's extra \(cpu ? "CPU time" : "cost") per impl: \(impl) worker at \(workers) workers vs posix_spawn of /bin/true, \(workers) at once",
            unit: "worker", crossProcess: true
        ) {
            let work = try BenchWork()
            let many = try work.scenario("many", workers: workers, impl: impl)
            let one = try work.scenario("one", workers: 1, impl: impl)
            let runner = BenchVariant(label: "run (N − 1 workers)", role: .library, measure: { _ in
                let all = try work.run(many, isolate: false, cpu: cpu)
                return all - (try work.run(one, isolate: false, cpu: cpu))
            }, fixedOperations: workers - 1)
            let floor = BenchVariant(label: "posix_spawn /bin/true ×N", role: .floor, measure: { _ in try BenchSpawn.many("/bin/true", [], count: workers, cpu: cpu) }, fixedOperations: workers)
            return ([runner, floor], [], ["--no-isolate; each worker: one `sleep: 0ms` step (exec: /bin/true); a sample is the N-worker run minus the 1-worker run"], { work.remove() })
        }
    }

    /// scenarios/stress/attach-storm.yaml (System V) with N workers: the whole run per worker.
    static func attachStorm(workers: Int) -> BenchCase {
        BenchCase(
            name: "attach-storm-\(workers)",
            summary: "the attach storm with \(workers) workers (System V: barrier, attach, atomic-add, detach), the whole run per worker",
            unit: "worker", crossProcess: true
        ) {
            let work = try BenchWork()
            let swift = try work.storm(workers: workers, impl: "swift")
            let c = try work.storm(workers: workers, impl: "c")
            let variants = [
                BenchVariant(label: "run, swift workers", role: .library, measure: { _ in try work.run(swift, isolate: false) }, fixedOperations: workers),
                BenchVariant(label: "run, c workers", role: .libshmh, measure: { _ in try work.run(c, isolate: false) }, fixedOperations: workers),
                BenchVariant(label: "posix_spawn /bin/true ×N", role: .floor, measure: { _ in try BenchSpawn.many("/bin/true", [], count: workers) }, fixedOperations: workers),
            ]
            return (variants, [], ["--no-isolate, leak check own; the count is checked by the scenario"], { work.remove() })
        }
    }

    /// lock / add / unlock on a futex lock, per iteration: the Swift worker's and the C worker's step interpreter
    /// (a plan of N and of 2N iterations, the difference of their own elapsed times) against a plain C loop.
    static func stepInterpreter(quick: Bool) -> BenchCase {
        let iterations = quick ? 100_000 : 400_000
        return BenchCase(name: "step-interpreter", summary: "steps lock, add, unlock (futex lock in a POSIX segment) vs a plain C loop", unit: "iteration", crossProcess: true) {
            let work = try BenchWork()
            func plan(_ n: Int) throws -> String {
                let key = "posix%3A%2F" + benchName("steps")
                return try work.file("steps-\(n).plan", """
                    shm-harness-plan 1
                    file bench
                    worker w 0 1
                    resource seg kind=segment key=\(key) size=4096 lock=futex lock-offset=64
                    step 1 create res=seg
                    repeat 2 times=\(n) body=3
                    step 3 lock res=seg timeout-ns=30000000000
                    step 4 add res=seg offset=0 value=1
                    step 5 unlock res=seg
                    step 6 check res=seg offset=0 u64=\(n)
                    step 7 detach res=seg
                    end

                    """)
            }
            let single = try plan(iterations)
            func worker(_ binary: String) throws -> Int64 { try BenchSpawn.elapsedOfPlan(BenchWork.beside(binary), single) }
            let page = sharedPage()
            let word = page.baseAddress!.assumingMemoryBound(to: UInt32.self)
            let counter = (page.baseAddress! + 8).assumingMemoryBound(to: UInt64.self)
            let variants = [
                BenchVariant(label: "swift worker", role: .library, measure: { _ in try worker("shm-harness-worker") }, fixedOperations: iterations),
                BenchVariant(label: "c worker", role: .libshmh, measure: { _ in try worker("shmh-worker") }, fixedOperations: iterations),
                BenchVariant(label: "plain C loop", role: .floor, measure: { n in cbench_futex_add_loop(word, counter, n) }),
            ]
            return (variants, [], ["workers: the elapsedNs each worker reports for a plan of create, \(iterations) iterations, check, detach (the three steps around the loop: under 0.3 ns per iteration); lock latencies are recorded, as always"], {
                munmap(page.baseAddress, page.count)
                work.remove()
            })
        }
    }
}

/// A private folder for a case's scenarios, plans and reports.
final class BenchWork {
    let directory: String

    init() throws {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/shmh-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CommandFailure(message: "mkdtemp in \(base): \(String(cString: strerror(errno)))") }
        directory = String(cString: made)
    }

    /// The executable `name` beside this one (SwiftPM builds the workers there).
    static func beside(_ name: String) -> String {
        var target = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &target, 4095)
        let path = n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        return String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) + "/" + name
    }

    func file(_ name: String, _ text: String) throws -> String {
        let path = directory + "/" + name
        guard let file = fopen(path, "w") else { throw CommandFailure(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        fputs(text, file)
        fclose(file)
        return path
    }

    /// N workers, each with one cheap step (exec: /bin/true).
    func scenario(_ name: String, workers: Int, impl: String) throws -> String {
        let body = impl == "exec" ? "    impl: exec\n    command: [/bin/true]\n" : "    impl: \(impl)\n    steps:\n      - sleep: 0ms\n"
        return try file("\(name)-\(impl)-\(workers).yaml", "summary: bench, \(workers) workers\ntimeout: 120s\nworkers:\n  - name: w\n    count: \(workers)\n" + body)
    }

    /// scenarios/stress/attach-storm.yaml, System V, with `workers` workers.
    func storm(workers: Int, impl: String) throws -> String {
        try file("storm-\(impl)-\(workers).yaml", """
            summary: bench storm
            timeout: 180s
            resources:
              seg: { kind: segment, backend: systemv, key: storm, size: 4096 }
            setup:
              - create: seg
            workers:
              - name: attacher
                count: \(workers)
                impl: \(impl)
                steps:
                  - barrier: go
                  - attach: seg
                  - atomic-add: { res: seg, offset: 8, value: 1 }
                  - detach: seg
            expect:
              memory:
                - { res: seg, offset: 8, u64: \(workers) }

            """)
    }

    /// `shm-harness run` of one scenario; the elapsed ns. Fails unless it passed.
    func run(_ scenario: String, isolate: Bool, cpu: Bool = false) throws -> Int64 {
        let arguments = ["run", isolate ? "--isolate" : "--no-isolate", "--no-strict", "--leak-check", "own", "--junit", directory + "/report.xml", scenario]
        return try BenchSpawn.many(Self.beside("shm-harness"), arguments, count: 1, cpu: cpu)
    }

    func remove() {
        for name in (try? listDirectory()) ?? [] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    private func listDirectory() throws -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

enum BenchSpawn {
    /// Starts `count` processes of `path ARGS` at once (stdin, stdout, stderr on /dev/null), waits for all;
    /// the elapsed ns. Fails if one does not exit 0.
    /// - Parameter cpu: return the CPU time (user + system) the processes and everything they waited for used,
    ///   from getrusage(RUSAGE_CHILDREN), instead of the elapsed time: on a shared machine the load inflates
    ///   elapsed times, much less CPU times.
    static func many(_ path: String, _ arguments: [String], count: Int, cpu: Bool = false) throws -> Int64 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pids: [pid_t] = []
        pids.reserveCapacity(count)
        let cpuBefore = childrenCPU()
        let start = benchNow()
        for _ in 0..<count {
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
            guard rc == 0 else {
                for pid in pids { kill(pid, SIGKILL) }
                try? waitAll(pids)
                throw CommandFailure(message: "posix_spawn \(path): \(String(cString: strerror(rc)))")
            }
            pids.append(pid)
        }
        var failed = 0
        for pid in pids {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            if status != 0 { failed += 1 }
        }
        let elapsed = cpu ? childrenCPU() - cpuBefore : benchNow() - start
        if failed > 0 { throw CommandFailure(message: "\(failed) of \(count) × \(([path] + arguments).joined(separator: " ")) failed") }
        return elapsed
    }

    /// User + system CPU ns of this process's reaped children (and theirs).
    static func childrenCPU() -> Int64 {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return (Int64(usage.ru_utime.tv_sec) + Int64(usage.ru_stime.tv_sec)) * 1_000_000_000
            + (Int64(usage.ru_utime.tv_usec) + Int64(usage.ru_stime.tv_usec)) * 1_000
    }

    /// Runs a worker on a plan; the `elapsedNs` of its result line (it must pass).
    static func elapsedOfPlan(_ worker: String, _ plan: String) throws -> Int64 {
        let process = try SpawnedProcess(label: "bench worker", arguments: [worker, plan], environment: [:])
        process.closeInput()
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(process.stdoutFD, $0.baseAddress, $0.count) }
            if n > 0 { output += chunk[0..<n]; continue }
            if n < 0 && (errno == EINTR || errno == EAGAIN) {
                var fd = pollfd(fd: process.stdoutFD, events: Int16(POLLIN), revents: 0)
                _ = poll(&fd, 1, 1000)
                continue
            }
            break
        }
        let status = process.wait()
        let text = String(decoding: output, as: UTF8.self)
        guard status == 0, let range = text.firstRange(of: "\"elapsedNs\":") else {
            throw CommandFailure(message: "\(worker) \(plan) failed (status \(status)): \(text)")
        }
        let digits = text[range.upperBound...].prefix(while: { $0.isNumber })
        guard let elapsed = Int64(digits) else { throw CommandFailure(message: "\(worker): no elapsedNs in \(text)") }
        return elapsed
    }
}
