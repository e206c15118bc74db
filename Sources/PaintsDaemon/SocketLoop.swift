// PaintsDaemon/SocketLoop: the socket thread: polls the routers, answers cheap methods at once, queues jobs, sends replies.
import Foundation
import Glibc
import Logging
import PaintsEngine
import PaintsProtocol
import PaintsTransport

/// Owns every socket of the daemon; lives and dies on the socket thread. It never runs compute: decoding and engines
/// run on workers, so `ping`, `hello` and `jobs.*` answer within milliseconds while jobs run.
final class SocketLoop {
    let server: PaintsServer
    var routers: [ZMQSocket] = []
    var monitors: [ZMQMonitor] = []
    let endpoints: [String]
    let locks: [EndpointLock]
    /// Peers by the connection descriptor their messages arrived on, per router: how a disconnect finds its peer.
    var peersByDescriptor: [[Int32: Set<PeerAddress>]] = []
    var lastHousekeeping = Date()

    var configuration: DaemonConfiguration { server.configuration }
    var table: JobTable { server.table }
    var logger: Logger { server.logger }

    init(server: PaintsServer, locks: [EndpointLock]) throws(DaemonError) {
        self.server = server
        self.locks = locks
        var bound: [String] = []
        for (index, endpoint) in server.configuration.endpoints.enumerated() {
            let listen = try EndpointPolicy.validate(endpoint)
            do {
                let router = try ZMQSocket(context: server.context, type: .router)
                if listen.ipv6 { try router.setOption(ZMQOption.ipv6, 1) }
                try router.setOption(ZMQOption.routerMandatory, 1)
                try router.setOption(ZMQOption.maxMessageSize, int64: Int64(server.configuration.maxMessageBytes) * 4)
                try router.setOption(ZMQOption.sendHighWaterMark, 100_000)
                try router.setOption(ZMQOption.receiveHighWaterMark, 10_000)
                try router.enableHeartbeats(intervalMilliseconds: server.configuration.heartbeatIntervalMilliseconds,
                                            timeoutMilliseconds: server.configuration.heartbeatTimeoutMilliseconds)
                let monitor = try router.openMonitor(context: server.context, endpoint: "inproc://paintsd-monitor-\(index)")
                try router.bind(listen.bindAddress)
                routers.append(router)
                monitors.append(monitor)
            } catch {
                throw .bind(endpoint: endpoint, message: error.description)
            }
            let actual = routers[index].lastEndpoint ?? listen.bindAddress
            try EndpointPolicy.checkBound(actual, requested: endpoint)
            if let path = listen.socketPath { try RuntimeDirectory.restrictSocket(path) }
            bound.append(actual)
        }
        endpoints = bound
        peersByDescriptor = Array(repeating: [:], count: routers.count)
    }

    func run() {
        let targets: [PollTarget] = routers.map { .socket($0) } + monitors.map { .socket($0.socket) }
            + [.descriptor(server.wakeup.descriptor)]
        while true {
            _ = try? ZMQPoller.waitReadable(targets, timeoutMilliseconds: 200)
            // Disconnects first: a descriptor reused by a new peer must not inherit the old peer's jobs.
            for (index, monitor) in monitors.enumerated() { handle(monitor.drain(), router: index) }
            for (index, router) in routers.enumerated() {
                var budget = 256  // keep replies flowing under a flood of requests
                while budget > 0, let message = try? router.receive(dontWait: true) {
                    handle(message, router: index)
                    budget -= 1
                }
            }
            server.wakeup.reset()
            flushOutbox()
            if Date().timeIntervalSince(lastHousekeeping) > 1 {
                lastHousekeeping = Date()
                table.purge(retention: configuration.resultRetention, maxRetained: configuration.maxRetainedJobs)
            }
            if shutdownComplete() { break }
        }
        flushOutbox()
        for router in routers {
            // No zmq_unbind first: it would drop the connections and the replies still queued on them. Closing with
            // a linger gives queued replies (last results, the shutdown reply) up to a second to leave; the server
            // then waits for that in zmq_ctx_term.
            try? router.setOption(ZMQOption.linger, 1000)
            router.close()
        }
        for monitor in monitors { monitor.socket.close() }
        for endpoint in endpoints where endpoint.hasPrefix("ipc://") { unlink(String(endpoint.dropFirst(6))) }
        for lock in locks { lock.release() }
        logger.info("stopped")
    }

    /// During a shutdown: true once no job is left and every reply went out. Past the grace period, cancels what is left.
    private func shutdownComplete() -> Bool {
        guard let mode = server.shutdownMode else { return false }
        if mode == .finish, let at = server.shutdownRequestedAt, Date().timeIntervalSince(at) > configuration.shutdownGrace {
            server.requestShutdown(mode: .cancel)
        }
        guard table.isIdle, server.outboxIsEmpty else { return false }
        table.stop()
        server.runner.waitUntilStopped()
        server.catalog.stop()
        return true
    }

    // MARK: connections

    private func handle(_ events: [ZMQMonitor.Event], router: Int) {
        for event in events {
            guard case .disconnected(let fd) = event, let peers = peersByDescriptor[router].removeValue(forKey: fd) else { continue }
            for peer in peers {
                let cancelled = table.ownerGone(peer)
                if !cancelled.isEmpty {
                    logger.info("client gone; jobs cancelled", metadata: ["jobs": "\(cancelled)"])
                }
            }
        }
    }

    private func flushOutbox() {
        for (peer, frames) in server.takeOutbox() { deliver(frames, to: peer) }
    }

    private func deliver(_ frames: [Data], to peer: PeerAddress) {
        let envelope = peer.delimited ? [peer.routingId, Data()] : [peer.routingId]
        do {
            try routers[peer.socket].send(envelope + frames, dontWait: true)
        } catch {
            // The peer is gone or not reading; its job results stay in the table for `jobs.result`.
            logger.debug("reply not delivered", metadata: ["error": "\(error)"])
        }
    }

    private func reply(_ reply: Reply, to peer: PeerAddress) { deliver(reply.encodedFrames(), to: peer) }

    // MARK: requests

    private func handle(_ message: ZMQMessage, router: Int) {
        var frames = message.frames
        guard frames.count >= 2 else { return }  // a routing id alone: nothing to answer
        let routingId = frames.removeFirst()
        let delimited = frames.first?.isEmpty == true && frames.count > 1
        if delimited { frames.removeFirst() }
        let peer = PeerAddress(socket: router, routingId: routingId, delimited: delimited)
        let descriptor = message.sourceDescriptor
        if descriptor >= 0, peersByDescriptor[router][descriptor]?.contains(peer) != true {
            // A peer's first message on a descriptor: every disconnect libzmq reported before accepting this connection
            // is applied first. The monitor got that event before the connection existed (one I/O thread emits both,
            // in order), but may not have been drained yet; applied later, it would take the new peer, whose
            // descriptor is the old one reused, for the one that left, and cancel its jobs.
            handle(monitors[router].drain(), router: router)
            peersByDescriptor[router][descriptor, default: []].insert(peer)
        }
        let singleReply = message.peerSocketType == "REQ"

        let size = frames.reduce(0) { $0 + $1.count }
        if size > configuration.maxMessageBytes {
            let id = frames.first.flatMap { $0.count < 65536 ? try? JSONValue.parse($0) : nil }?["id"]?.stringValue
            reply(.error(id: id, ProtocolError(.messageTooLarge, "the message has \(size) bytes, over the limit of \(configuration.maxMessageBytes)",
                                               details: ["bytes": JSONValue(size), "max_bytes": JSONValue(configuration.maxMessageBytes)])),
                  to: peer)
            return
        }
        let request: Request
        do { request = try Request.parse(frames: frames) } catch {
            reply(.error(id: error.id, error.error), to: peer)
            return
        }
        do {
            try dispatch(request, from: peer, singleReply: singleReply)
        } catch {
            reply(.error(id: request.id, error), to: peer)
        }
    }

    private func dispatch(_ request: Request, from peer: PeerAddress, singleReply: Bool) throws(ProtocolError) {
        let id = request.id
        switch request.method {
        case .ping:
            try requireNoParams(request.params)
            reply(.result(id: id, ["pong": true, "time": JSONValue(Date().timeIntervalSince1970)]), to: peer)
        case .hello:
            try requireNoParams(request.params)
            reply(.result(id: id, helloJSON()), to: peer)
        case .enginesList:
            try requireNoParams(request.params)
            let catalog = server.catalog.snapshot
            reply(.result(id: id, ["engines": catalog.engines, "defaults": catalog.defaults]), to: peer)
        case .colorize, .undoPreview, .undoSequence, .tag:
            try submitJob(request, from: peer, singleReply: singleReply)
        case .jobsList:
            try requireNoParams(request.params)
            let jobs = table.all().map { $0.0.statusJSON(queuePosition: $0.1) }
            reply(.result(id: id, ["jobs": .array(jobs), "queue": table.statistics.json]), to: peer)
        case .jobsStatus:
            let params = try JobParams(request.params)
            guard let job = table.record(params.job) else { throw jobNotFound(params.job) }
            reply(.result(id: id, job: job.id, job.statusJSON(queuePosition: table.queuePosition(job.id))), to: peer)
        case .jobsCancel:
            let params = try JobParams(request.params)
            try cancel(params.job, requestId: id, from: peer)
        case .jobsResult:
            let params = try JobParams(request.params)
            try resend(params.job, requestId: id, to: peer)
        case .shutdown:
            let params = try ShutdownParams(request.params)
            let mode = params.mode ?? configuration.shutdownMode
            reply(.result(id: id, ["shutting_down": true, "mode": .string(mode.rawValue),
                                   "unfinished_jobs": JSONValue(table.statistics.queued + table.statistics.running)]), to: peer)
            logger.info("shutdown requested by a client", metadata: ["mode": "\(mode.rawValue)"])
            server.requestShutdown(mode: mode)
        }
    }

    private func jobNotFound(_ job: String) -> ProtocolError {
        ProtocolError(.jobNotFound, "no job \(job) (finished jobs are kept for \(Int(configuration.resultRetention)) s)",
                      details: ["job": .string(job)])
    }

    private func helloJSON() -> JSONValue {
        let catalog = server.catalog.snapshot
        return [
            "protocol": JSONValue(protocolVersion),
            "daemon": ["name": "paintsd", "version": .string(configuration.version), "pid": JSONValue(Int(getpid())),
                       "uptime_s": JSONValue(Date().timeIntervalSince(server.startedAt)),
                       "zmq_version": .string(ZMQContext.libraryVersion)],
            "endpoints": .array(endpoints.map { .string($0) }),
            "methods": .array(Method.allCases.map { .string($0.rawValue) }),
            "engines": catalog.engines,
            "defaults": catalog.defaults,
            "engine_check": ["age_s": JSONValue(Date().timeIntervalSince(catalog.takenAt)), "took_s": JSONValue(catalog.tookSeconds),
                             "interval_s": JSONValue(configuration.engineCheckInterval)],
            "limits": configuration.limitsJSON,
            "queue": table.statistics.json,
            "compute": .object(configuration.compute),
            "memory": ProcessMemory.current().map {
                ["rss_bytes": JSONValue($0.resident), "peak_rss_bytes": JSONValue($0.peak),
                 "budget_bytes": JSONValue(configuration.memoryBudgetBytes)]
            } ?? .null,
            "error_codes": .array(ErrorCode.allCases.map { .string($0.rawValue) }),
        ]
    }

    // MARK: jobs

    private func submitJob(_ request: Request, from peer: PeerAddress, singleReply: Bool) throws(ProtocolError) {
        if server.shutdownMode != nil {
            throw ProtocolError(.shuttingDown, "the daemon is shutting down and accepts no new jobs")
        }
        let work: JobWork
        let engineName: String?
        let seed: Int?
        let frames = request.frames
        func intake(_ ref: ImageReference, _ param: String) throws(ProtocolError) -> ImagePayload {
            try ImageIntake.payload(ref, param: param, frames: frames, configuration: configuration)
        }
        switch request.method {
        case .colorize:
            let params = try ColorizeParams(request.params)
            let sketch = try intake(params.sketch, "sketch")
            let hints = try params.hints.map { r throws(ProtocolError) in try intake(r, "hints") }
            let reference = try params.reference.map { r throws(ProtocolError) in try intake(r, "reference") }
            if let hints, hints.width != sketch.width || hints.height != sketch.height {
                throw ProtocolError(.imageSizeMismatch,
                                    "hints are \(hints.width)x\(hints.height) but the sketch is \(sketch.width)x\(sketch.height)",
                                    details: ["param": "hints", "expected": [JSONValue(sketch.width), JSONValue(sketch.height)],
                                              "actual": [JSONValue(hints.width), JSONValue(hints.height)]])
            }
            work = .colorize(params, sketch: sketch, hints: hints, reference: reference)
            (engineName, seed) = (params.engine, params.seed)
        case .undoPreview, .undoSequence:
            let params = try UndoPreviewParams(request.params)
            let image = try intake(params.image, "image")
            work = request.method == .undoPreview ? .undoPreview(params, image: image) : .undoSequence(params, image: image)
            (engineName, seed) = (params.engine, params.seed)
        case .tag:
            let params = try TagParams(request.params)
            work = .tag(params, image: try intake(params.image, "image"))
            (engineName, seed) = (params.engine, 0)
        default:
            throw ProtocolError(.internalError, "\(request.method.rawValue) is not a job method")
        }
        try request.checkFramesReferenced()
        let census = server.catalog.snapshot.census
        let engine = try server.registry.engine(named: engineName, for: request.method, census: census)
        let estimate = try checkMemory(work, method: request.method, engine: engine, census: census)
        let record = JobRecord(id: table.makeJobId(), method: request.method, engine: engine.name, request: request,
                               owner: peer, singleReply: singleReply, seed: seed ?? Int.random(in: 0...0xFFFF_FFFF), work: work)
        let position = try table.submit(record)
        if !singleReply {
            reply(Reply(id: request.id, type: .accepted, job: record.id,
                        body: ["queue_position": JSONValue(position), "engine": .string(engine.name),
                               "seed": JSONValue(record.seed), "estimated_peak_bytes": JSONValue(estimate)]), to: peer)
        }
    }

    /// The job's memory estimate, from the engine and the pictures' headers; `resource_exhausted` when it does not fit
    /// the budget beside the models resident now.
    private func checkMemory(_ work: JobWork, method: Method, engine: any Engine,
                             census: EngineRegistry.Census) throws(ProtocolError) -> Int {
        let shape: JobShape
        switch work {
        case .colorize(let params, let sketch, let hints, let reference):
            let others = [hints, reference].compactMap { $0 }.reduce(0) { $0 + $1.width * $1.height }
            shape = JobShape(method: method, width: sketch.width, height: sketch.height, otherPixels: others,
                             options: params.options)
        case .undoPreview(let params, let image):
            shape = JobShape(method: method, width: image.width, height: image.height, frames: params.steps.count,
                             options: params.options)
        case .undoSequence(let params, let image):
            shape = JobShape(method: method, width: image.width, height: image.height, frames: params.steps.count + 2,
                             options: params.options)
        case .tag(let params, let image):
            shape = JobShape(method: method, width: image.width, height: image.height, frames: 0, options: params.options)
        }
        let estimate = engine.estimatedPeakBytes(shape)
        var resident = census.residentBytes.values.reduce(0, +)
        let budget = configuration.memoryBudgetBytes
        if estimate > budget - resident {
            // Memory pressure: the engines' caches go first (they only make a second press faster), then the job is
            // weighed again against what stays resident.
            for engine in server.registry.engines { engine.releaseCaches() }
            resident = server.registry.engines.reduce(0) { $0 + $1.residentBytes }
        }
        guard estimate <= budget - resident else {
            func gib(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
            throw ProtocolError(.resourceExhausted,
                                "the job would need about \(gib(estimate)) at its peak; the daemon's memory budget is \(gib(budget)) "
                                    + "with \(gib(resident)) held by resident models (fewer frames or a smaller picture fit)",
                                details: ["estimated_peak_bytes": JSONValue(estimate), "memory_budget_bytes": JSONValue(budget),
                                          "resident_bytes": JSONValue(resident)])
        }
        return estimate
    }

    private func cancel(_ jobId: String, requestId: String, from peer: PeerAddress) throws(ProtocolError) {
        switch table.cancel(jobId) {
        case .notFound:
            throw jobNotFound(jobId)
        case .dequeued(let job):
            server.replyDequeued(job)
            reply(.result(id: requestId, job: jobId, ["job": .string(jobId), "state": "cancelled", "was": "queued"]), to: peer)
        case .signalled:
            reply(.result(id: requestId, job: jobId, ["job": .string(jobId), "state": "cancelling", "was": "running"]), to: peer)
        case .alreadyFinished(let job):
            reply(.result(id: requestId, job: jobId, ["job": .string(jobId), "state": .string(job.state.rawValue),
                                                      "was": .string(job.state.rawValue)]), to: peer)
        }
    }

    private func resend(_ jobId: String, requestId: String, to peer: PeerAddress) throws(ProtocolError) {
        guard let job = table.record(jobId) else { throw jobNotFound(jobId) }
        if let stored = job.result {
            reply(.result(id: requestId, job: jobId, stored.result, payloads: stored.payloads), to: peer)
        } else if let error = job.error {
            reply(.error(id: requestId, job: jobId, error), to: peer)
        } else {
            throw ProtocolError(.jobNotFinished, "job \(jobId) is \(job.state.rawValue)",
                                details: ["job": .string(jobId), "state": .string(job.state.rawValue)])
        }
    }
}
