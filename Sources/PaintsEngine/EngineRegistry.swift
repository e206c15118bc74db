// PaintsEngine/EngineRegistry: the engines a daemon serves, looked up by method and name.
import PaintsProtocol

/// The engines known to a daemon, with a default per method.
public struct EngineRegistry: Sendable {
    public private(set) var engines: [any Engine]
    private var defaults: [Method: String] = [:]

    public init(engines: [any Engine] = []) {
        self.engines = []
        for engine in engines { register(engine) }
    }

    /// Adds an engine; the first registered engine for a method becomes its default.
    public mutating func register(_ engine: any Engine, makeDefault: Bool = false) {
        engines.removeAll { $0.name == engine.name }
        engines.append(engine)
        for capability in engine.capabilities where makeDefault || defaults[capability.method] == nil {
            defaults[capability.method] = engine.name
        }
    }

    public func defaultEngine(for method: Method) -> String? { defaults[method] }

    /// The engine for `method`, by name or the default; `unsupported_engine` when none fits, `model_not_found` when its
    /// files are missing.
    public func engine(named name: String?, for method: Method) throws(ProtocolError) -> any Engine {
        let names = engines.filter { $0.supports(method) }.map(\.name)
        guard let wanted = name ?? defaults[method], let engine = engines.first(where: { $0.name == wanted }),
              engine.supports(method)
        else {
            throw ProtocolError(.unsupportedEngine, "no engine \"\(name ?? "(default)")\" for \(method.rawValue)",
                                details: ["engine": name.map(JSONValue.string) ?? .null,
                                          "available": .array(names.map { .string($0) })])
        }
        if case .unavailable(let reason) = engine.status {
            throw ProtocolError(.modelNotFound, "engine \"\(engine.name)\" cannot run: \(reason)",
                                details: ["engine": .string(engine.name)])
        }
        return engine
    }

    public var defaultsJSON: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: defaults.map { ($0.key.rawValue, JSONValue.string($0.value)) }))
    }
}
