import Foundation
import SystemPackage
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Truncation is an error, not a crash: a reader of a shrinking file gets `bus-error` and goes on.
@Suite struct FileSharingTruncationTests {
    /// Another process reads round and round while this one shrinks the file: the reader reports
    /// `bus-error`, keeps running, and every chunk it had read is intact.
    @Test(arguments: Medium.allCases)
    func readerSurvivesAShrink(medium: Medium) throws {
        try #require(medium.parent != nil, "no \(medium) directory here")
        let directory = try ScratchDirectory(on: medium)
        let path = directory.file("shrinking")
        let file = try MappedFile.create(at: path, size: 1 << 20)
        let mapping = try file.map()
        FileSharingHelpers.fillPattern(mapping.bytes)
        try mapping.unmap()

        let reader = try FileSharingHelpers.helper(["read-loop", "--file", path, "--chunk", "4096"])
        try FileSharingHelpers.expectLine(reader, startingWith: "reading")
        try file.resize(to: 64 << 10)
        let error = try FileSharingHelpers.expectLine(reader, startingWith: "error=")
        #expect(error.hasPrefix("error=bus-error "), "\(error)")
        let detail = try FileSharingHelpers.expectLine(reader, startingWith: "detail=")
        #expect(detail.contains("shrunk") || detail.contains("SIGBUS"), "\(detail)")
        #expect(try FileSharingHelpers.expectLine(reader, startingWith: "still-running") == "still-running size=65536")
        let kept = try FileSharingHelpers.expectLine(reader, startingWith: "kept=")
        #expect(kept.hasSuffix(" bad=0"), "\(kept)")
        #expect(try reader.wait().exitCode == 0, "\(reader.standardError())")
    }

    /// The guard itself, without the size check: the file shrinks after mapping, and the copy's SIGBUS
    /// becomes `bus-error` (in a child process, so a broken guard cannot kill the test runner).
    @Test func guardTurnsSIGBUSIntoBusError() async {
        await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            func fail(_ message: String) -> Never {
                FileSharingHelpers.writeError(message)
                exit(1)
            }
            do {
                let file = try MappedFile.temporary(in: "/dev/shm", size: 3 * 4096)
                let mapping = try file.map()
                mapping.bytes[5000] = 42
                try file.resize(to: 4096)
                let before = BusGuard.faultsCaught
                do {
                    _ = try mapping.readGuardOnly(at: 4096, count: 4096)
                    fail("the read of a shrunk page succeeded")
                } catch let error as SharedMemoryError {
                    guard error.code == .busError else { fail("expected bus-error, got \(error)") }
                    guard error.description.contains("SIGBUS") else { fail("no SIGBUS in \(error)") }
                }
                guard BusGuard.faultsCaught == before + 1 else { fail("the guard counted \(BusGuard.faultsCaught - before)") }
                // The checked read says the same without faulting, and the page still backed reads fine.
                guard SharedMemoryError.caught({ _ = try mapping.read(at: 8192, count: 1) })?.code == .busError else {
                    fail("the size check did not report bus-error")
                }
                guard BusGuard.faultsCaught == before + 1 else { fail("the size check faulted") }
                guard try mapping.read(at: 0, count: 16).count == 16 else { fail("short read") }
                // A write to a gone page is caught too.
                guard SharedMemoryError.caught({ try mapping.write([1], at: 9000) })?.code == .busError else {
                    fail("a write past the end was not bus-error")
                }
            } catch {
                fail("unexpected: \(error)")
            }
        }
    }

    /// Outside a guard, SIGBUS keeps its default action: the guard's handler hands it on.
    @Test func unguardedTouchStillDiesWithSIGBUS() async {
        await #expect(processExitsWith: .signal(SIGBUS)) {
            guard let file = try? MappedFile.temporary(in: "/dev/shm", size: 2 * 4096),
                let mapping = try? file.map()
            else { exit(2) }
            _ = try? mapping.read(at: 0, count: 1)  // installs the guard's handler
            try? file.resize(to: 0)
            mapping.bytes[4096] = 1
            exit(3)
        }
    }

    /// A memfd sealed against shrinking cannot be shrunk under its reader: the shrink is `sealed`, the
    /// reader never sees an error.
    @Test func shrinkSealedMemFDRefusesTheShrink() throws {
        let memfd = try MemFD.create(name: "sealed-reader", size: 1 << 20)
        let mapping = try memfd.map()
        FileSharingHelpers.fillPattern(mapping.bytes)
        try mapping.unmap()
        try memfd.addSeals([.shrink])
        let inherited = try DescriptorPassing.inheritableCopy(of: memfd.descriptor!, atLeast: 50)
        let reader: ChildProcess
        do {
            defer { try? inherited.close() }
            reader = try FileSharingHelpers.helper(["read-loop", "--fd", "\(inherited.rawValue)"])
        }
        #expect(try FileSharingHelpers.expectLine(reader, startingWith: "seals=") == "seals=shrink")
        try FileSharingHelpers.expectLine(reader, startingWith: "reading")
        let refusal = SharedMemoryError.caught { try memfd.resize(to: 4096) }
        #expect(refusal?.code == .sealed, "\(String(describing: refusal))")
        #expect(refusal?.underlyingError == .notPermitted)
        #expect(try memfd.size() == 1 << 20)
        reader.send("stop")
        #expect(try FileSharingHelpers.expectLine(reader, startingWith: "stopped").hasPrefix("stopped reads="))
        #expect(try FileSharingHelpers.expectLine(reader, startingWith: "kept=").hasSuffix(" bad=0"))
        #expect(try reader.wait().exitCode == 0, "\(reader.standardError())")
    }
}
