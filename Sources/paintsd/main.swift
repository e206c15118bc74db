// paintsd: the daemon executable: arguments, signals and wiring of the server with its engines.
import ArgumentParser
import Dispatch
import Foundation
import Logging
import PaintsDaemon
import PaintsEngine
import PaintsProtocol
import PaintsTensor

struct Paintsd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paintsd",
        abstract: "The paintsd daemon: keeps engines resident and answers painting apps over ZeroMQ.",
        version: DaemonVersion.current,
        subcommands: [Serve.self, Tool.self],
        defaultSubcommand: Serve.self)

    /// `paintsd --help` (and `paintsd help`) shows what running the daemon takes: serve's settings, since `serve` is
    /// the default command and `paintsd --workers 2` runs it. ArgumentParser's own root help would list only the
    /// subcommands and hide every setting behind `paintsd help serve`.
    static func printSettingsIfHelpAsked(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        guard [["--help"], ["-h"], ["help"], ["-help"]].contains(arguments) else { return }
        print(helpMessage(for: Serve.self))
        Foundation.exit(0)
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The paintsd daemon: keeps engines resident and answers painting apps over ZeroMQ.",
        usage: """
            paintsd [serve] [<options>]    run the daemon (serve is the default command)
            paintsd tool <subcommand>      model tools (see 'paintsd help tool')
            paintsd --version
            """,
        discussion: """
            Listens on the per-user ipc socket ($XDG_RUNTIME_DIR/paintsd/paintsd.sock, else /tmp/paintsd-UID/) and on \
            each --listen endpoint. SIGTERM or SIGINT stops it cleanly (a second signal cancels what is left).
            """)

    @Option(name: .long, help: "Directory of the default ipc socket (default: $XDG_RUNTIME_DIR/paintsd, else /tmp/paintsd-UID).")
    var runtimeDir: String?

    @Option(name: .long, help: "Another endpoint to listen on: ipc:///abs/path, or tcp://HOST:PORT with HOST 127.x.x.x, localhost or [::1] and PORT a number or * (repeatable).")
    var listen: [String] = []

    @Flag(name: .long, help: "Do not listen on the default ipc endpoint (only on --listen endpoints).")
    var noDefaultEndpoint = false

    @Option(name: .long, help: "Worker threads running jobs.")
    var workers = 1

    @Option(name: .long, help: "Jobs that may wait before new ones are refused with queue_full.")
    var queueCapacity = 32

    @Option(name: .long, help: "Largest request in MiB, all frames together.")
    var maxMessageMib = 256

    @Option(name: .long, help: "Largest image in megapixels (checked from headers before decoding).")
    var maxMegapixels = 64

    @Option(name: .long, help: "Directory whose files {\"path\": ...} image references may name (repeatable).")
    var allowPath: [String] = []

    @Option(name: .long, help: "Seconds a finished job's result stays available to jobs.result.")
    var resultRetention: Double = 600

    @Option(name: .long, help: "On SIGTERM/SIGINT: 'finish' running and queued jobs, or 'cancel' them.")
    var shutdownMode: String = "finish"

    @Option(name: .long, help: "Seconds to wait for jobs in finish mode before cancelling them.")
    var shutdownGrace: Double = 30

    @Option(name: .long, help: "Directory of Stable Diffusion models (diffusers pipeline folders) for the sd engine (default: $XDG_DATA_HOME/paintsd/models, else ~/.local/share/paintsd/models).")
    var models: String?

    @Option(name: .long, help: "Memory the sd engine may keep models resident in, GiB; past it the least recently used model is unloaded.")
    var memoryBudgetGib: Double = 8

    @Option(name: .long, help: "The daemon's memory budget, GiB: resident models plus a job's estimated peak must fit in it, or the job is refused with resource_exhausted (default: 3/4 of the machine's or cgroup's memory).")
    var daemonMemoryGib: Double?

    @Option(name: .long, help: "Convolutions' and linear layers' precision: f32, or bf16 (bfloat16 products summed in float32, on CPUs with AVX512-BF16 or AMX: faster, about 10x the output error of fp16 weights; elsewhere f32). Default: $PAINTSD_PRECISION, else f32.")
    var precision: OneDNN.Precision?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard workers >= 1, workers <= 64 else { throw ValidationError("--workers must be in 1...64") }
        guard (daemonMemoryGib ?? 1) > 0 else { throw ValidationError("--daemon-memory-gib must be positive") }
        guard queueCapacity >= 1 else { throw ValidationError("--queue-capacity must be at least 1") }
        guard ShutdownParams.Mode(rawValue: shutdownMode) != nil else { throw ValidationError("--shutdown-mode is finish or cancel") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard !noDefaultEndpoint || !listen.isEmpty else { throw ValidationError("--no-default-endpoint needs a --listen endpoint") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "paintsd")
        if let precision { OneDNN.precision = precision }
        if precision == .bf16 && !OneDNN.hasBF16 {
            logger.warning("--precision bf16: this CPU has no bfloat16 dot products (AVX512-BF16, AMX); computing in f32")
        }
        var endpoints = listen
        if !noDefaultEndpoint {
            endpoints.insert(DefaultEndpoint.endpoint(inDirectory: runtimeDir ?? DefaultEndpoint.runtimeDirectory()), at: 0)
        }
        var configuration = DaemonConfiguration(endpoints: endpoints)
        configuration.workers = workers
        configuration.queueCapacity = queueCapacity
        configuration.maxMessageBytes = maxMessageMib << 20
        configuration.maxPixels = maxMegapixels * 1_000_000
        configuration.allowedPaths = allowPath
        if let daemonMemoryGib { configuration.memoryBudgetBytes = Int(daemonMemoryGib * Double(1 << 30)) }
        configuration.resultRetention = resultRetention
        configuration.shutdownMode = ShutdownParams.Mode(rawValue: shutdownMode) ?? .finish
        configuration.shutdownGrace = shutdownGrace
        let attentionLanes: Int
        if case .fused(let lanes) = Tensor.widestAttention { attentionLanes = lanes } else { attentionLanes = 0 }
        configuration.compute = ["blas_kernel": .string(BLAS.coreName), "blas_threads": JSONValue(BLAS.threads),
                                 "convolutions": .string(OneDNN.backend.rawValue), "attention_lanes": JSONValue(attentionLanes),
                                 "precision": .string(OneDNN.precision.rawValue), "bf16_available": .bool(OneDNN.hasBF16),
                                 "winograd": .string(!OneDNN.winograd ? "off" : (OneDNN.winogradOnOneDNN ? "\(OneDNN.winogradKernel ?? "") + sgemm" : "sgemm")),
                                 "heap_retention": .bool(HeapRetention.isEnabled),
                                 "linear_rows_lanes": JSONValue(Tensor.linearRowsLanes ?? 0),
                                 "packed_weights": .bool(Tensor.packedWeights),
                                 "linear_panels": .bool(Tensor.packedWeights && Tensor.linearOnPanels),
                                 "linear_panels_float32": .bool(Tensor.packedWeights && Tensor.linearOnPanels && Tensor.float32OnPanels),
                                 "parallel": .string(Parallel.defaultThreads.rawValue)]

        var engines = BuiltinEngines.registry()
        let env = ProcessInfo.processInfo.environment
        let dataHome = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        let modelsDirectory = models ?? dataHome + "/paintsd/models"
        engines.register(StableDiffusionEngine(modelsDirectory: modelsDirectory, memoryBudgetBytes: Int(memoryBudgetGib * Double(1 << 30))))
        engines.register(ReferenceOnlyEngine(modelsDirectory: modelsDirectory, memoryBudgetBytes: Int(memoryBudgetGib * Double(1 << 30))))
        // Model engines are preferred over the built-in ones while their files are present (hello says which is default).
        let tagger = WDTaggerEngine(modelsDirectory: modelsDirectory)
        engines.register(tagger)
        engines.register(PaintsUndoEngine(modelsDirectory: modelsDirectory, tagger: tagger), preferred: true)
        let server = PaintsServer(configuration: configuration, engines: engines, logger: logger)
        // Signals: the first asks for the configured shutdown, a second one cancels whatever is left. Set up before
        // binding, so a signal sent as soon as the socket file appears is not lost.
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                let again = server.isShuttingDown
                logger.info("signal received", metadata: ["signal": "\(sig)", "mode": "\(again ? "cancel" : configuration.shutdownMode.rawValue)"])
                server.requestShutdown(mode: again ? .cancel : nil)
            }
            source.resume()
            sources.append(source)
        }
        let bound: [String]
        do { bound = try server.start() } catch {
            FileHandle.standardError.write(Data("paintsd: \(error)\n".utf8))
            throw ExitCode(3)
        }
        for endpoint in bound {
            FileHandle.standardOutput.write(Data("paintsd \(DaemonVersion.current) listening on \(endpoint)\n".utf8))
        }
        server.wait()
        sources.forEach { $0.cancel() }
        FileHandle.standardOutput.write(Data("paintsd stopped\n".utf8))
    }
}

OpenBLASKernel.selectBestKernelOrReexecute()
HeapRetention.configureProcess()
Paintsd.printSettingsIfHelpAsked()
Paintsd.main()

extension OneDNN.Precision: ExpressibleByArgument {}
