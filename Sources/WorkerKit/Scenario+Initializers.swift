// The memberwise initializers the scenario loader (ScenarioKit, another module since the model moved into
// WorkerKit) calls: the same labels, order and defaults as the synthesized ones, which are internal to WorkerKit
// (the trailing `_: PackageAccess` only keeps the two apart; callers never write it). A stored property added to
// one of these types needs its parameter here too.

/// Tells the package-wide memberwise initializers below from the synthesized internal ones.
package enum PackageAccess { case memberwise }

extension Scenario {
    package init(
        file: String, classname: String, name: String, summary: String, tags: [String], requires: [Requirement],
        timeout: Duration, combination: [(name: String, value: String)], resources: [ResourceSpec], setup: [Step],
        workers: [WorkerSpec], expect: ScenarioExpectation, location: SourceLocation, divergence: String? = nil,
        _: PackageAccess = .memberwise
    ) {
        self.file = file
        self.classname = classname
        self.name = name
        self.summary = summary
        self.tags = tags
        self.requires = requires
        self.timeout = timeout
        self.combination = combination
        self.resources = resources
        self.setup = setup
        self.workers = workers
        self.expect = expect
        self.location = location
        self.divergence = divergence
    }
}

extension ResourceSpec {
    package init(
        id: String, kind: ResourceKind, backend: SegmentBackend?, key: String?, size: Int?, lock: LockKind, lockOffset: Int,
        directory: String?, isPrivate: Bool, seals: [Seal], location: SourceLocation, _: PackageAccess = .memberwise
    ) {
        self.id = id
        self.kind = kind
        self.backend = backend
        self.key = key
        self.size = size
        self.lock = lock
        self.lockOffset = lockOffset
        self.directory = directory
        self.isPrivate = isPrivate
        self.seals = seals
        self.location = location
    }
}

extension WorkerSpec {
    package init(
        name: String, count: Int, impl: WorkerImpl, command: [String], user: String?, steps: [Step], expect: Termination,
        location: SourceLocation, divergence: String? = nil, _: PackageAccess = .memberwise
    ) {
        self.name = name
        self.count = count
        self.impl = impl
        self.command = command
        self.user = user
        self.steps = steps
        self.expect = expect
        self.location = location
        self.divergence = divergence
    }
}

extension ScenarioExpectation {
    package init(memory: [MemoryCheck], checkLeaks: Bool, _: PackageAccess = .memberwise) {
        self.memory = memory
        self.checkLeaks = checkLeaks
    }
}

extension MemoryCheck {
    package init(resource: String, offset: Int, value: StoredValue, location: SourceLocation, comparison: MemoryComparison = .equal,
                 _: PackageAccess = .memberwise) {
        self.resource = resource
        self.offset = offset
        self.value = value
        self.location = location
        self.comparison = comparison
    }
}

extension Step {
    package init(action: Action, expectError: String?, location: SourceLocation, _: PackageAccess = .memberwise) {
        self.action = action
        self.expectError = expectError
        self.location = location
    }
}
