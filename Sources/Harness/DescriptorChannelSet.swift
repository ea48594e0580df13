import ScenarioKit
import SharedMemoryKit
import SystemPackage

/// The runner's side of descriptor passing: for every worker group that sends (`send-fd: {res, to: G}`), one
/// `SOCK_SEQPACKET` socketpair between each of its processes and each process of G (one per pair of processes,
/// whichever way they send). Each worker inherits only its own ends, at the runner's numbers; the runner closes
/// every end once the workers are started.
final class DescriptorChannelSet {
    private struct Process: Hashable {
        var group: String
        var index: Int
    }

    private var sockets: [UnixSocket] = []
    private var ends: [Process: [Plan.Channel]] = [:]

    init(workers: [WorkerSpec]) throws(SharedMemoryError) {
        let counts = Dictionary(workers.map { ($0.name, $0.count) }, uniquingKeysWith: { a, _ in a })
        var connected = Set<[Process]>()
        for worker in workers {
            for target in Self.targets(worker.steps) {
                guard let count = counts[target] else { continue }
                for i in 0..<worker.count {
                    for j in 0..<count {
                        let a = Process(group: worker.name, index: i)
                        let b = Process(group: target, index: j)
                        guard a != b else { continue }
                        let key = [a, b].sorted { ($0.group, $0.index) < ($1.group, $1.index) }
                        guard connected.insert(key).inserted else { continue }
                        let (x, y) = try UnixSocket.pair()
                        sockets += [x, y]
                        ends[a, default: []].append(Plan.Channel(group: b.group, index: b.index, fd: x.descriptor!.rawValue))
                        ends[b, default: []].append(Plan.Channel(group: a.group, index: a.index, fd: y.descriptor!.rawValue))
                    }
                }
            }
        }
    }

    /// The channels of process `index` of `group`.
    func channels(of group: String, _ index: Int) -> [Plan.Channel] { ends[Process(group: group, index: index)] ?? [] }

    func close() {
        for socket in sockets { socket.close() }
        sockets = []
    }

    /// The groups a worker's steps send descriptors to.
    static func targets(_ steps: [Step]) -> [String] {
        var result: [String] = []
        for step in steps {
            switch step.action {
            case .sendFD(_, let to) where !result.contains(to): result.append(to)
            case .repeatTimes(_, let body), .repeatFor(_, let body):
                for t in targets(body) where !result.contains(t) { result.append(t) }
            default: break
            }
        }
        return result
    }
}
