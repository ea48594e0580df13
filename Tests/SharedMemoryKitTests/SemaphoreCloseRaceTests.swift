import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Two last users of one semaphore closing at the same moment: `close()` in its two steps (drop the own usage
/// record, then claim the removal, remove if claimed and close), driven for two handles in all six
/// interleavings. Two handles are two open file descriptions, which is all the usage records tell apart: to the
/// protocol they are two processes, so no scheduling luck is needed. Exactly one of them removes the semaphore
/// each time, and nothing is left behind. libshmh's twin: CHarness/tests/test_sem_close_race.c.
@Suite struct SemaphoreCloseRaceTests {
    static let orders = ["AABB", "ABAB", "ABBA", "BAAB", "BABA", "BBAA"]

    /// Runs `order` ("ABAB": A's first step, B's, A's second, B's); `keepThird` keeps a third user open through
    /// it (the negative control: then the semaphore must stay, and the leak check must see it).
    private static func run(_ backend: Backend, _ order: String, keepThird: Bool = false) throws -> [String] {
        let key = TestEnvironment.uniqueKey(backend.type, "closeRace")
        let a = try SystemSemaphore(key: key, initialValue: 1)
        let b = try SystemSemaphore(key: key, initialValue: 1)
        var third: SystemSemaphore? = keepThird ? try SystemSemaphore(key: key, initialValue: 1) : nil
        var leaks = LeakCheck(key)
        leaks.remember()
        var steps = ["A": 0, "B": 0]
        for party in order.map(String.init) {
            let semaphore = party == "A" ? a : b
            if steps[party] == 0 { semaphore.dropRecordBeforeClose() } else { semaphore.close(removeIfUnused: true) { true } }
            steps[party]! += 1
        }
        let left = leaks.leftovers()
        third?.close()
        third = nil
        leaks.expectClean()
        return left
    }

    @Test(arguments: Backend.allCases, orders)
    func everyInterleavingRemovesTheSemaphore(backend: Backend, order: String) throws {
        let left = try Self.run(backend, order)
        #expect(left.isEmpty, "\(order) left behind: \(left)")
    }

    /// Negative control: with a third user still open, both closers must leave it, and the check sees it.
    @Test(arguments: Backend.allCases)
    func aThirdUserKeepsIt(backend: Backend) throws {
        let left = try Self.run(backend, "ABAB", keepThird: true)
        #expect(!left.isEmpty)
    }
}
