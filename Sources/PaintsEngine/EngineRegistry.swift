// PaintsEngine/EngineRegistry: the engines a daemon serves, looked up by method and name.
import PaintsProtocol

/// The engines known to a daemon, with a default per method: the most preferred engine that can run now (a model
/// engine whose files are missing gives way to the next, e.g. `paints-undo` to the `builtin` simulator), else the
/// most preferred. Results always name the engine that ran.
public struct EngineRegistry: Sendable {
    public private(set) var engines: [any Engine]
    /// Engine names per method, most preferred first.
    private var preferences: [Method: [String]] = [:]

    public init(engines: [any Engine] = []) {
        self.engines = []
        for engine in engines { register(engine) }
    }

    /// Adds an engine, after those registered before it in preference, or before them with `preferred`.
    public mutating func register(_ engine: any Engine, preferred: Bool = false) {
        engines.removeAll { $0.name == engine.name }
        engines.append(engine)
        for capability in engine.capabilities {
            var names = (preferences[capability.method] ?? []).filter { $0 != engine.name }
            if preferred { names.insert(engine.name, at: 0) } else { names.append(engine.name) }
            preferences[capability.method] = names
        }
    }

    /// Every engine's status and resident bytes, read once. Reading a status may look at model files; callers that
    /// must not touch the disk (the daemon's socket thread) decide from a census taken elsewhere.
    public struct Census: Sendable {
        public var statuses: [String: EngineStatus]
        public var residentBytes: [String: Int]
    }

    public func census() -> Census {
        Census(statuses: Dictionary(engines.map { ($0.name, $0.status) }, uniquingKeysWith: { a, _ in a }),
               residentBytes: Dictionary(engines.map { ($0.name, $0.residentBytes) }, uniquingKeysWith: { a, _ in a }))
    }

    func status(of engine: any Engine, in census: Census?) -> EngineStatus {
        census?.statuses[engine.name] ?? engine.status
    }

    public func defaultEngine(for method: Method, census: Census? = nil) -> String? {
        let names = preferences[method] ?? []
        return names.first { name in engines.first { $0.name == name }.map { status(of: $0, in: census).canRun } ?? false }
            ?? names.first
    }

    /// The engine for `method`, by name or the default; `unsupported_engine` when none fits, `model_not_found` when its
    /// files are missing. Statuses come from `census` when given, else from the engines themselves.
    public func engine(named name: String?, for method: Method, census: Census? = nil) throws(ProtocolError) -> any Engine {
        let names = engines.filter { $0.supports(method) }.map(\.name)
        guard let wanted = name ?? defaultEngine(for: method, census: census), let engine = engines.first(where: { $0.name == wanted }),
              engine.supports(method)
        else {
            throw ProtocolError(.unsupportedEngine, "no engine \"\(name ?? "(default)")\" for \(method.rawValue)",
                                details: ["engine": name.map(JSONValue.string) ?? .null,
                                          "available": .array(names.map { .string($0) })])
        }
        if case .unavailable(let reason) = status(of: engine, in: census) {
            var details: [String: JSONValue] = ["engine": .string(engine.name)]
            if let fallback = defaultEngine(for: method, census: census), fallback != engine.name { details["fallback"] = .string(fallback) }
            throw ProtocolError(.modelNotFound, "engine \"\(engine.name)\" cannot run: \(reason)", details: details)
        }
        return engine
    }

    public func defaultsJSON(census: Census? = nil) -> JSONValue {
        .object(Dictionary(uniqueKeysWithValues: preferences.keys.compactMap { m in
            defaultEngine(for: m, census: census).map { (m.rawValue, JSONValue.string($0)) }
        }))
    }

    /// The engine list `hello` and `engines.list` send.
    public func descriptionsJSON(census: Census? = nil) -> JSONValue {
        .array(engines.map { engine in
            engine.description(status: status(of: engine, in: census),
                               residentBytes: census?.residentBytes[engine.name] ?? engine.residentBytes)
        })
    }
}
