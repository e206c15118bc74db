// PaintsDaemon/JobRunner: worker threads that decode a job's images, run its engine and send progress and the result.
import Foundation
import Logging
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// Where workers send replies (the server's outbox, drained by the socket thread).
protocol ReplySink: Sendable {
    func send(_ reply: Reply, to peer: PeerAddress)
}

/// The `JobContext` of one running job: cancellation from its flag, progress to the job table and a streaming owner.
struct RunningJobContext: JobContext {
    let job: JobRecord
    let table: JobTable
    let sink: ReplySink
    let started: Date
    let previewMaxSide: Int

    func checkCancellation() throws(ProtocolError) {
        if job.cancel.isSet { throw ProtocolError(.cancelled, "job \(job.id) was cancelled") }
    }

    func report(stage: String, step: Int, steps: Int, fraction: Double, preview: RGBAImage?) {
        let elapsed = Date().timeIntervalSince(started)
        let f = min(1, max(0, fraction))
        let eta: Double? = f > 0.01 ? elapsed / f * (1 - f) : nil
        let report = ProgressReport(stage: stage, step: step, steps: steps, fraction: f, etaSeconds: eta, elapsedSeconds: elapsed)
        table.updateProgress(job.id, report)
        guard job.stream, !job.singleReply else { return }
        var body: [String: JSONValue] = ["progress": .object(report.json)]
        var payloads: [Data] = []
        if let preview {
            let side = max(preview.width, preview.height)
            let scaled = side > previewMaxSide
                ? preview.resized(width: max(1, preview.width * previewMaxSide / side),
                                  height: max(1, preview.height * previewMaxSide / side))
                : preview
            if let (data, reference) = try? ImageIntake.encode(scaled, as: .png, frame: 1) {
                payloads.append(data)
                body["preview"] = reference
            }
        }
        sink.send(Reply(id: job.requestId, type: .progress, job: job.id, body: body, payloads: payloads), to: job.owner)
    }
}

/// A fixed pool of threads taking jobs from the table.
final class JobRunner: Sendable {
    let table: JobTable
    let registry: EngineRegistry
    let configuration: DaemonConfiguration
    let logger: Logger
    private let finished = DispatchGroup()

    init(table: JobTable, registry: EngineRegistry, configuration: DaemonConfiguration, logger: Logger) {
        self.table = table
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts the workers; their replies go to `sink`.
    /// - Parameter jobEnded: called on the worker after each job, before its reply is sent (so a client that reads
    ///   `engines.list` after a result sees what the job made resident).
    func start(sink: ReplySink, jobEnded: @escaping @Sendable () -> Void = {}) {
        for index in 0..<max(1, configuration.workers) {
            finished.enter()
            let thread = Thread { [self] in
                while let job = table.next() {
                    run(job, sink: sink, jobEnded: jobEnded)
                    table.release()
                }
                finished.leave()
            }
            thread.name = "paintsd-worker-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Blocks until every worker has left (after `table.stop()`).
    func waitUntilStopped() { finished.wait() }

    private func run(_ job: JobRecord, sink: ReplySink, jobEnded: @Sendable () -> Void) {
        let started = Date()
        let context = RunningJobContext(job: job, table: table, sink: sink, started: started,
                                        previewMaxSide: configuration.previewMaxSide)
        do throws(ProtocolError) {
            guard let work = job.work else { throw ProtocolError(.internalError, "job \(job.id) has no inputs") }
            try context.checkCancellation()
            // Model code polls this between blocks and convolution tiles, so a cancel stops even one long step.
            let cancel = job.cancel
            let (result, payloads) = try ComputeCancellation.run(whileNot: { cancel.isSet }) { () throws(ProtocolError) in
                try execute(work, job: job, context: context, started: started)
            }
            jobEnded()
            let record = table.finish(job.id, result: StoredResult(result: result, payloads: payloads), error: nil)
            logger.info("job finished", metadata: ["job": "\(job.id)", "ms": "\(Int(Date().timeIntervalSince(started) * 1000))"])
            if record?.ownerGone == false {
                sink.send(.result(id: job.requestId, job: job.id, result, payloads: payloads), to: job.owner)
            }
        } catch {
            // However the engine reported it (a model error from a stopped convolution, say), a job stopped after
            // its cancel is cancelled.
            let error = job.cancel.isSet && error.code != .cancelled
                ? ProtocolError(.cancelled, "job \(job.id) was cancelled") : error
            jobEnded()
            table.finish(job.id, result: nil, error: error)
            logger.info("job ended", metadata: ["job": "\(job.id)", "code": "\(error.code.rawValue)"])
            sink.send(.error(id: job.requestId, job: job.id, error), to: job.owner)
        }
    }

    private func execute(_ work: JobWork, job: JobRecord, context: RunningJobContext,
                         started: Date) throws(ProtocolError) -> (JSONValue, [Data]) {
        let queued = started.timeIntervalSince(job.createdAt)
        var timings: [String: JSONValue] = ["queued_ms": JSONValue(queued * 1000)]
        func lap(_ name: String, _ since: Date) { timings[name] = JSONValue(Date().timeIntervalSince(since) * 1000) }
        let maxPixels = configuration.maxPixels
        /// Decodes a job's one picture and makes its engine resident; returns the picture and when the run began.
        func decodeAndLoad(_ payload: ImagePayload, _ engine: any Engine) throws(ProtocolError) -> (RGBAImage, Date) {
            let decoding = Date()
            let image = try ImageIntake.decode(payload, maxPixels: maxPixels)
            lap("decode_ms", decoding)
            try context.checkCancellation()
            let running = Date()
            try engine.load()
            return (image, running)
        }
        switch work {
        case .colorize(let params, let sketchPayload, let hintsPayload, let referencePayload):
            guard let engine = try registry.engine(named: job.engine, for: .colorize) as? ColorizeEngine else {
                throw ProtocolError(.unsupportedEngine, "engine \(job.engine) does not colorize")
            }
            var t = Date()
            let sketch = try ImageIntake.decode(sketchPayload, maxPixels: maxPixels)
            let hints = try hintsPayload.map { p throws(ProtocolError) in try ImageIntake.decode(p, maxPixels: maxPixels) }
            let reference = try referencePayload.map { p throws(ProtocolError) in try ImageIntake.decode(p, maxPixels: maxPixels) }
            lap("decode_ms", t)
            try context.checkCancellation()
            t = Date()
            try engine.load()
            let output = try engine.colorize(
                ColorizeInput(sketch: sketch, hints: hints, reference: reference, prompt: params.prompt,
                              negativePrompt: params.negativePrompt, seed: job.seed, options: params.options),
                context: context)
            lap("run_ms", t)
            try context.checkCancellation()
            t = Date()
            let (data, reference_) = try ImageIntake.encode(output.image, as: params.output, frame: 1)
            // Each layer in a frame of its own, except one that is the picture itself (sent once).
            var payloads = [data]
            var layers: [JSONValue] = []
            for layer in output.layers.isEmpty ? [ColorizeLayer(name: "color", image: output.image)] : output.layers {
                try context.checkCancellation()
                var reference = reference_
                if layer.image != output.image {
                    let encoded = try ImageIntake.encode(layer.image, as: params.output, frame: payloads.count + 1)
                    payloads.append(encoded.0)
                    reference = encoded.1
                }
                layers.append(["name": .string(layer.name), "image": reference, "visible": .bool(layer.visible)])
            }
            lap("encode_ms", t)
            lap("total_ms", job.createdAt)
            let result: JSONValue = [
                "image": reference_, "layers": .array(layers), "engine": .string(engine.name), "seed": JSONValue(job.seed),
                "timings": .object(timings), "info": .object(output.info),
            ]
            return (result, payloads)
        case .undoPreview(let params, let imagePayload), .undoSequence(let params, let imagePayload):
            let sequence: Bool
            if case .undoSequence = work { sequence = true } else { sequence = false }
            guard let engine = try registry.engine(named: job.engine, for: sequence ? .undoSequence : .undoPreview) as? UndoPreviewEngine else {
                throw ProtocolError(.unsupportedEngine, "engine \(job.engine) does not make undo previews")
            }
            let (image, t) = try decodeAndLoad(imagePayload, engine)
            // A sequence runs its keyframes from the blank canvas towards the finished picture (which is the input).
            let steps = sequence ? Array(Set(params.steps.filter { $0 > 0 })).sorted(by: >) : params.steps
            // Each frame is encoded as soon as it is made and its pixels dropped: the job holds one decoded frame.
            var payloads: [Data] = []
            var entries: [JSONValue] = []
            var encoding = 0.0
            func keep(_ frame: UndoFrame, kind: String) throws(ProtocolError) {
                try context.checkCancellation()
                let started = Date()
                let (data, reference) = try ImageIntake.encode(frame.image, as: params.output, frame: payloads.count + 1)
                encoding += Date().timeIntervalSince(started)
                payloads.append(data)
                var entry: [String: JSONValue] = ["step": JSONValue(frame.step), "image": reference]
                if sequence { entry["kind"] = .string(kind) }
                entries.append(.object(entry))
            }
            if sequence {
                try keep(UndoFrame(step: UndoSequence.blankStep, image: RGBAImage(width: image.width, height: image.height, fill: .white)),
                         kind: "blank")
            }
            var info: [String: JSONValue] = [:]
            var made = 0
            if !steps.isEmpty {
                info = try engine.undoPreview(
                    UndoPreviewInput(image: image, steps: steps, seed: job.seed, prompt: params.prompt, options: params.options),
                    context: context) { frame throws(ProtocolError) in
                    guard made < steps.count, frame.step == steps[made] else {
                        throw ProtocolError(.internalError, "engine gave a frame of step \(frame.step) where step \(made < steps.count ? "\(steps[made])" : "none") was due")
                    }
                    made += 1
                    try keep(frame, kind: "keyframe")
                }
            }
            guard made == steps.count else {
                throw ProtocolError(.internalError, "engine returned \(made) frames for \(steps.count) steps")
            }
            if sequence { try keep(UndoFrame(step: 0, image: image), kind: "finished") }
            timings["run_ms"] = JSONValue((Date().timeIntervalSince(t) - encoding) * 1000)
            timings["encode_ms"] = JSONValue(encoding * 1000)
            lap("total_ms", job.createdAt)
            let result: JSONValue = [
                "frames": .array(entries), "engine": .string(engine.name), "seed": JSONValue(job.seed),
                "timings": .object(timings), "info": .object(info),
            ]
            return (result, payloads)
        case .tag(let params, let imagePayload):
            guard let engine = try registry.engine(named: job.engine, for: .tag) as? TagEngine else {
                throw ProtocolError(.unsupportedEngine, "engine \(job.engine) does not tag pictures")
            }
            let (image, t) = try decodeAndLoad(imagePayload, engine)
            let output = try engine.tag(TagInput(image: image, threshold: params.threshold, characterThreshold: params.characterThreshold,
                                                 exclude: params.exclude, options: params.options), context: context)
            lap("run_ms", t)
            timings["encode_ms"] = 0        // no images to encode
            lap("total_ms", job.createdAt)
            let tags: [JSONValue] = output.tags.map {
                ["name": .string($0.name), "category": .string($0.category), "probability": JSONValue($0.probability)]
            }
            let result: JSONValue = [
                "prompt": .string(output.prompt), "tags": .array(tags),
                "ratings": .object(Dictionary(output.ratings.map { ($0.name, JSONValue($0.probability)) }, uniquingKeysWith: { a, _ in a })),
                "engine": .string(engine.name), "timings": .object(timings), "info": .object(output.info),
            ]
            return (result, [])
        }
    }
}
