// The lean Swift worker: `shm-harness-worker PLAN [--user U]` (see docs/worker-protocol.md). No Foundation,
// no ArgumentParser: it starts in about the time of the C worker.
import WorkerKit

#if canImport(Glibc)
import Glibc
#endif

exit(WorkerCommandLine.main(Array(CommandLine.arguments.dropFirst())))
