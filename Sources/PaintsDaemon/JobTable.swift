// PaintsDaemon/JobTable: every job the daemon knows (queued, running, finished), the bounded queue, and cancellation.
import Dispatch
import Foundation
import PaintsProtocol
import Synchronization

public enum JobState: String, Sendable {
    case queued, running, done, failed, cancelled

    public var isFinished: Bool { self == .done || self == .failed || self == .cancelled }
}

/// Where a reply goes: a router socket of the daemon, the peer's routing id, and the envelope the peer used.
public struct PeerAddress: Sendable, Hashable {
    public var socket: Int
    public var routingId: Data
    /// The peer put an empty delimiter frame before its message (REQ does); replies carry one back.
    public var delimited: Bool
}

/// A flag a worker polls between steps; set from the socket thread.
public final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func set() { flag.store(true, ordering: .releasing) }
    public var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// The checked inputs of a job, decoded later by its worker.
public enum JobWork: Sendable {
    case colorize(ColorizeParams, sketch: ImagePayload, hints: ImagePayload?, reference: ImagePayload?)
    case undoPreview(UndoPreviewParams, image: ImagePayload)
    case undoSequence(UndoPreviewParams, image: ImagePayload)
    case tag(TagParams, image: ImagePayload)
}

/// A finished job's result, kept for `jobs.result`.
public struct StoredResult: Sendable {
    public var result: JSONValue
    public var payloads: [Data]
}

public struct JobRecord: Sendable {
    public let id: String
    public let method: Method
    public let engine: String
    public let requestId: String
    public let owner: PeerAddress
    /// The owner takes exactly one reply (a REQ socket): no `accepted`, no `progress`.
    public let singleReply: Bool
    public let stream: Bool
    public let onDisconnect: DisconnectPolicy
    public let seed: Int
    public let cancel = CancelFlag()
    public var state: JobState = .queued
    public var progress: ProgressReport?
    public let createdAt = Date()
    public var startedAt: Date?
    public var finishedAt: Date?
    public var result: StoredResult?
    public var error: ProtocolError?
    public var ownerGone = false
    /// The inputs; dropped once the job finishes.
    public var work: JobWork?

    init(id: String, method: Method, engine: String, request: Request, owner: PeerAddress, singleReply: Bool, seed: Int,
         work: JobWork) {
        self.id = id
        self.method = method
        self.engine = engine
        requestId = request.id
        self.owner = owner
        self.singleReply = singleReply
        stream = request.stream
        onDisconnect = request.onDisconnect
        self.seed = seed
        self.work = work
    }

    /// The status object of `jobs.status` and `jobs.list`.
    func statusJSON(queuePosition: Int?) -> JSONValue {
        var o: [String: JSONValue] = [
            "job": .string(id), "method": .string(method.rawValue), "engine": .string(engine), "state": .string(state.rawValue),
            "request_id": .string(requestId), "seed": JSONValue(seed), "created_at": JSONValue(createdAt.timeIntervalSince1970),
            "client_connected": JSONValue(!ownerGone), "result_available": JSONValue(result != nil),
        ]
        if let queuePosition { o["queue_position"] = JSONValue(queuePosition) }
        if let progress { o["progress"] = .object(progress.json) }
        if let startedAt { o["started_at"] = JSONValue(startedAt.timeIntervalSince1970) }
        if let finishedAt { o["finished_at"] = JSONValue(finishedAt.timeIntervalSince1970) }
        if let error { o["error"] = error.json }
        return .object(o)
    }
}

/// Counters a user may ask for (`jobs.list`, `hello`).
public struct QueueStatistics: Sendable {
    public var queued: Int
    public var running: Int
    public var capacity: Int
    public var workers: Int
    public var completed: Int
    public var failed: Int
    public var cancelled: Int

    public var json: JSONValue {
        ["queued": JSONValue(queued), "running": JSONValue(running), "capacity": JSONValue(capacity),
         "workers": JSONValue(workers), "completed": JSONValue(completed), "failed": JSONValue(failed),
         "cancelled": JSONValue(cancelled)]
    }
}

/// All jobs, guarded by one lock; workers block on `next()`.
public final class JobTable: Sendable {
    struct State {
        var jobs: [String: JobRecord] = [:]
        var queue: [String] = []
        var finishedOrder: [String] = []
        var counter = 0
        var stopping = false
        /// Workers holding a job, from `next()` until `release()` (after its reply was handed to the outbox).
        var busyWorkers = 0
        var completed = 0, failed = 0, cancelled = 0
    }

    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)
    let capacity: Int
    let workers: Int

    init(capacity: Int, workers: Int) {
        self.capacity = capacity
        self.workers = workers
    }

    func makeJobId() -> String {
        state.withLock { s in
            s.counter += 1
            return "j\(s.counter)-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        }
    }

    /// Queues a job; returns the number of jobs ahead of it. `queue_full` when the queue is at capacity.
    func submit(_ record: JobRecord) throws(ProtocolError) -> Int {
        let position: Int? = state.withLock { s in
            guard s.queue.count < capacity else { return nil }
            s.jobs[record.id] = record
            s.queue.append(record.id)
            return s.queue.count - 1
        }
        guard let position else {
            throw ProtocolError(.queueFull, "the queue holds \(capacity) \(capacity == 1 ? "job" : "jobs") already; try again later",
                                details: ["capacity": JSONValue(capacity)])
        }
        available.signal()
        return position
    }

    /// Blocks until a job is ready to run and marks it running; nil once the table is stopping.
    func next() -> JobRecord? {
        while true {
            available.wait()
            let picked: (JobRecord?, Bool) = state.withLock { s in
                if s.stopping && s.queue.isEmpty { return (nil, true) }
                guard !s.queue.isEmpty else { return (nil, false) }
                let id = s.queue.removeFirst()
                guard var job = s.jobs[id] else { return (nil, false) }
                job.state = .running
                job.startedAt = Date()
                s.jobs[id] = job
                s.busyWorkers += 1
                return (job, false)
            }
            if picked.1 {
                available.signal()  // let the next worker see "stopping" too
                return nil
            }
            if let job = picked.0 { return job }
        }
    }

    /// A worker is done with the job `next()` gave it, its reply sent.
    func release() {
        state.withLock { $0.busyWorkers -= 1 }
    }

    func updateProgress(_ id: String, _ report: ProgressReport) {
        state.withLock { s in s.jobs[id]?.progress = report }
    }

    /// Records how a job ended; returns the record as finished.
    @discardableResult
    func finish(_ id: String, result: StoredResult?, error: ProtocolError?) -> JobRecord? {
        state.withLock { s in
            guard var job = s.jobs[id] else { return nil }
            job.finishedAt = Date()
            job.work = nil
            job.result = result
            job.error = error
            if result != nil {
                job.state = .done
                s.completed += 1
            } else if error?.code == .cancelled {
                job.state = .cancelled
                s.cancelled += 1
            } else {
                job.state = .failed
                s.failed += 1
            }
            s.jobs[id] = job
            s.finishedOrder.append(id)
            return job
        }
    }

    enum CancelOutcome {
        case notFound
        /// Removed from the queue; nobody else will answer its requester.
        case dequeued(JobRecord)
        /// Flag set; the worker will answer `cancelled` at its next step.
        case signalled(JobRecord)
        case alreadyFinished(JobRecord)
    }

    func cancel(_ id: String) -> CancelOutcome {
        let outcome: CancelOutcome = state.withLock { s in
            guard let job = s.jobs[id] else { return .notFound }
            switch job.state {
            case .queued:
                s.queue.removeAll { $0 == id }
                return .dequeued(job)
            case .running:
                job.cancel.set()
                return .signalled(job)
            case .done, .failed, .cancelled:
                return .alreadyFinished(job)
            }
        }
        if case .dequeued(let job) = outcome { finish(job.id, result: nil, error: Self.cancelledBeforeStart(job)) }
        return outcome
    }

    static func cancelledBeforeStart(_ job: JobRecord) -> ProtocolError {
        ProtocolError(.cancelled, "job \(job.id) was cancelled before it started")
    }

    /// The owner disconnected: marks its jobs, cancels those whose policy says so; returns the ids cancelled.
    func ownerGone(_ peer: PeerAddress) -> [String] {
        let ids: [String] = state.withLock { s in
            var ids: [String] = []
            for (id, job) in s.jobs where job.owner == peer {
                s.jobs[id]?.ownerGone = true
                if !job.state.isFinished && job.onDisconnect == .cancel { ids.append(id) }
            }
            return ids
        }
        for id in ids { _ = cancel(id) }
        return ids
    }

    func record(_ id: String) -> JobRecord? { state.withLock { $0.jobs[id] } }

    /// Jobs ahead of `id` in the queue, nil when it is not queued.
    func queuePosition(_ id: String) -> Int? { state.withLock { $0.queue.firstIndex(of: id) } }

    /// All known jobs, oldest first, with their queue positions.
    func all() -> [(JobRecord, Int?)] {
        state.withLock { s in
            s.jobs.values.sorted { $0.createdAt < $1.createdAt }.map { ($0, s.queue.firstIndex(of: $0.id)) }
        }
    }

    var statistics: QueueStatistics {
        state.withLock { s in
            QueueStatistics(queued: s.queue.count, running: s.jobs.values.filter { $0.state == .running }.count,
                            capacity: capacity, workers: workers, completed: s.completed, failed: s.failed,
                            cancelled: s.cancelled)
        }
    }

    /// Whether no job is queued or running and every finished job's reply has been handed on.
    var isIdle: Bool { state.withLock { s in s.queue.isEmpty && s.busyWorkers == 0 } }

    /// Forgets finished jobs older than `retention` seconds, and the oldest beyond `maxRetained`.
    func purge(retention: TimeInterval, maxRetained: Int, now: Date = Date()) {
        state.withLock { s in
            var keep: [String] = []
            for id in s.finishedOrder {
                guard let job = s.jobs[id], let finished = job.finishedAt else { continue }
                if now.timeIntervalSince(finished) > retention { s.jobs[id] = nil } else { keep.append(id) }
            }
            while keep.count > maxRetained { s.jobs[keep.removeFirst()] = nil }
            s.finishedOrder = keep
        }
    }

    /// Cancels every queued and running job (shutdown in cancel mode); returns the jobs taken off the queue, whose
    /// requesters nobody else will answer.
    func cancelAll() -> [JobRecord] {
        let ids = state.withLock { s in s.jobs.values.filter { !$0.state.isFinished }.map(\.id) }
        return ids.compactMap { id in
            if case .dequeued(let job) = cancel(id) { return job }
            return nil
        }
    }

    /// Wakes every worker so it returns nil from `next()` once the queue is empty.
    func stop() {
        state.withLock { $0.stopping = true }
        for _ in 0..<max(1, workers) { available.signal() }
    }
}
