// The scenario model, the plan format and the step executor live in WorkerKit (no Foundation there, for the
// lean worker); every user of ScenarioKit sees them as before.
@_exported import WorkerKit
