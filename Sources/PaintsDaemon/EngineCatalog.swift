// PaintsDaemon/EngineCatalog: what the engines can do now, taken off the socket thread and read by it without waiting.
import Foundation
import PaintsEngine
import PaintsProtocol
import Synchronization

/// An engine's status may look at model files (a models folder listed, new checkpoints' headers read), which can take
/// seconds on a slow disk or a hostile file. The socket thread answers `hello`, `engines.list` and job submissions from
/// the last census instead. A thread of its own takes a new one every `interval` seconds, and a worker takes one when a
/// job ends (a model may have become resident).
final class EngineCatalog: Sendable {
    struct Snapshot: Sendable {
        var census: EngineRegistry.Census
        var engines: JSONValue
        var defaults: JSONValue
        var takenAt: Date
        var tookSeconds: Double
    }

    let registry: EngineRegistry
    let interval: TimeInterval
    private let state: Mutex<Snapshot>
    private let stopping = Atomic<Bool>(false)
    private let poke = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Takes the first census here, on the starting thread, before the daemon listens.
    init(registry: EngineRegistry, interval: TimeInterval) {
        self.registry = registry
        self.interval = interval
        state = Mutex(Self.take(registry))
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    static func take(_ registry: EngineRegistry) -> Snapshot {
        let started = Date()
        let census = registry.census()
        return Snapshot(census: census, engines: registry.descriptionsJSON(census: census),
                        defaults: registry.defaultsJSON(census: census), takenAt: Date(),
                        tookSeconds: Date().timeIntervalSince(started))
    }

    /// Starts the thread that keeps the census fresh.
    func start() {
        let thread = Thread { [self] in
            while !stopping.load(ordering: .acquiring) {
                _ = poke.wait(timeout: .now() + interval)
                if stopping.load(ordering: .acquiring) { break }
                refreshNow()
            }
            finished.signal()
        }
        thread.name = "paintsd-catalog"
        thread.start()
    }

    /// Takes a new census on the calling thread (a worker whose job ended).
    func refreshNow() {
        let fresh = Self.take(registry)
        state.withLock { $0 = fresh }
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        poke.signal()
        finished.wait()
    }
}
