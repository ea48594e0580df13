// StepExecutor, ResourceHandle and WorkerProcess live in WorkerKit (no Foundation there, for the lean worker);
// every user of Harness sees them as before (`Harness.setParentDeathSignal()` too).
@_exported import WorkerKit
