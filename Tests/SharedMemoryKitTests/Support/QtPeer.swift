import Foundation
import TestSupport
import SharedMemoryKit

/// A real Qt process (PySide6, Tests/QtPeer/qt_peer.py) doing one QSharedMemory/QSystemSemaphore operation.
final class QtPeer {
    let process: ChildProcess
    let command: String

    init(_ command: String, key: NativeIPCKey, _ arguments: [String] = []) throws {
        guard let python = TestEnvironment.qtPython else { throw TestFailure("no Qt peer available") }
        self.command = command
        process = try ChildProcess(
            [python, TestEnvironment.qtPeerScript, command, "--key", key.toString()!] + arguments,
            environment: ["QT_QPA_PLATFORM": "offscreen"])
    }

    /// The next JSON line the peer prints.
    func next(timeout: Double = 60) throws -> [String: Any] {
        guard let line = process.readLine(timeout: timeout) else {
            throw TestFailure("Qt peer \(command) printed nothing more; stderr: \(process.standardError())")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("Qt peer \(command) printed \(line)")
        }
        return object
    }

    /// Waits for an event line (`ready`, `locked`, …) and returns it.
    @discardableResult
    func expectEvent(_ event: String, timeout: Double = 60) throws -> [String: Any] {
        let object = try next(timeout: timeout)
        guard object["event"] as? String == event else {
            throw TestFailure("Qt peer \(command): expected \(event), got \(object)")
        }
        return object
    }

    /// Lets a holding peer go on (a line on stdin), then returns its final result line.
    func finish(timeout: Double = 60) throws -> [String: Any] {
        process.send("")
        process.closeInput()
        var last = try next(timeout: timeout)
        while last["ok"] == nil { last = try next(timeout: timeout) }
        try process.wait(timeout: timeout)
        return last
    }

    /// Runs a one-shot command to its end and returns the final result line.
    static func run(_ command: String, key: NativeIPCKey, _ arguments: [String] = []) throws -> [String: Any] {
        let peer = try QtPeer(command, key: key, arguments)
        peer.process.closeInput()
        var last = try peer.next()
        while last["ok"] == nil { last = try peer.next() }
        try peer.process.wait()
        return last
    }
}

extension Array where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
