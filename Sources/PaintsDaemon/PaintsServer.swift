// PaintsDaemon/PaintsServer: the daemon: binds its endpoints, runs the socket loop on its own thread, answers methods.
import Foundation
import Glibc
import Logging
import PaintsEngine
import PaintsProtocol
import PaintsTransport
import Synchronization

/// A running paintsd. `start()` binds and returns; `wait()` blocks until a shutdown completes.
public final class PaintsServer: Sendable, ReplySink {
    public let configuration: DaemonConfiguration
    let registry: EngineRegistry
    let logger: Logger
    let table: JobTable
    let runner: JobRunner
    let catalog: EngineCatalog
    let context = ZMQContext()
    let wakeup = WakeupSignal()
    private let outbox = Mutex<[(PeerAddress, [Data])]>([])
    private let lifecycle = Mutex(Lifecycle())
    private let stopped = DispatchSemaphore(value: 0)
    let startedAt = Date()

    struct Lifecycle {
        var shutdown: ShutdownParams.Mode?
        var shutdownRequestedAt: Date?
        var boundEndpoints: [String] = []
    }

    public init(configuration: DaemonConfiguration, engines: EngineRegistry, logger: Logger = Logger(label: "paintsd")) {
        self.configuration = configuration
        registry = engines
        self.logger = logger
        table = JobTable(capacity: configuration.queueCapacity, workers: configuration.workers)
        runner = JobRunner(table: table, registry: engines, configuration: configuration, logger: logger)
        catalog = EngineCatalog(registry: engines, interval: configuration.engineCheckInterval)
    }

    /// Binds every endpoint (taking a lock beside each ipc socket) and starts the socket thread and the workers.
    /// - Returns: the endpoints actually bound (a `tcp://127.0.0.1:*` wildcard resolved to its port).
    @discardableResult
    public func start() throws(DaemonError) -> [String] {
        var locks: [EndpointLock] = []
        for endpoint in configuration.endpoints {
            guard let path = try EndpointPolicy.validate(endpoint).socketPath else { continue }
            try RuntimeDirectory.prepare((path as NSString).deletingLastPathComponent)
            locks.append(try EndpointLock(socketPath: path))
        }
        let heldLocks = locks
        let ready = DispatchSemaphore(value: 0)
        let bindResult = Mutex<Result<[String], DaemonError>?>(nil)
        let thread = Thread { [self] in
            let loop: SocketLoop
            do throws(DaemonError) {
                loop = try SocketLoop(server: self, locks: heldLocks)
                bindResult.withLock { $0 = .success(loop.endpoints) }
                ready.signal()
            } catch {
                bindResult.withLock { $0 = .failure(error) }
                ready.signal()
                return
            }
            loop.run()
            // Every socket is closed: wait for queued replies (the shutdown reply, last results) to leave.
            context.terminate()
            stopped.signal()
        }
        thread.name = "paintsd-sockets"
        thread.start()
        ready.wait()
        switch bindResult.withLock({ $0 }) {
        case .success(let endpoints)?:
            lifecycle.withLock { $0.boundEndpoints = endpoints }
            catalog.start()
            runner.start(sink: self, jobEnded: { [catalog] in catalog.refreshNow() })
            logger.info("listening", metadata: ["endpoints": "\(endpoints)"])
            return endpoints
        case .failure(let error)?: throw error
        case nil: throw .setup("socket thread failed to start")
        }
    }

    public var endpoints: [String] { lifecycle.withLock { $0.boundEndpoints } }

    /// Stops accepting jobs; `finish` lets queued and running jobs complete (up to the grace period), `cancel` cancels
    /// them. Safe from any thread, signal handlers' dispatch queues included.
    public func requestShutdown(mode: ShutdownParams.Mode? = nil) {
        lifecycle.withLock { l in
            if l.shutdown == nil {
                l.shutdown = mode ?? configuration.shutdownMode
                l.shutdownRequestedAt = Date()
            } else if mode == .cancel {
                l.shutdown = .cancel
            }
        }
        if shutdownMode == .cancel {
            for job in table.cancelAll() { replyDequeued(job) }
        }
        wakeup.signal()
    }

    var shutdownMode: ShutdownParams.Mode? { lifecycle.withLock { $0.shutdown } }
    public var isShuttingDown: Bool { shutdownMode != nil }
    var shutdownRequestedAt: Date? { lifecycle.withLock { $0.shutdownRequestedAt } }

    /// Blocks until the daemon has stopped: jobs ended, replies flushed, sockets closed, socket files removed.
    public func wait() {
        stopped.wait()
        stopped.signal()
    }

    // MARK: ReplySink

    func send(_ reply: Reply, to peer: PeerAddress) {
        outbox.withLock { $0.append((peer, reply.encodedFrames())) }
        wakeup.signal()
    }

    /// Tells the requester of a job taken off the queue that it was cancelled.
    func replyDequeued(_ job: JobRecord) {
        if !job.ownerGone { send(.error(id: job.requestId, job: job.id, JobTable.cancelledBeforeStart(job)), to: job.owner) }
    }

    func takeOutbox() -> [(PeerAddress, [Data])] {
        outbox.withLock { o in
            defer { o.removeAll() }
            return o
        }
    }

    var outboxIsEmpty: Bool { outbox.withLock { $0.isEmpty } }
}

