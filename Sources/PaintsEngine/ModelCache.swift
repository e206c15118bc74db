// PaintsEngine/ModelCache: the diffusion models an engine keeps resident (checkpoints' pipelines and ControlNets), by
// name, least recently used first out when a new one would pass the memory budget.
import Foundation
import PaintsDiffusion
import PaintsProtocol
import PaintsTensor
import Synchronization

public final class ModelCache: Sendable {
    /// What is resident: a kind ("model", "controlnet") and a name make the key.
    struct Key: Hashable {
        var kind: String
        var name: String
    }
    struct Entry {
        var model: any Sendable
        var bytes: Int
        var lastUsed: Date
    }
    private let entries = Mutex<[Key: Entry]>([:])
    public let budgetBytes: Int

    public init(budgetBytes: Int) { self.budgetBytes = budgetBytes }

    public var residentBytes: Int { entries.withLock { $0.values.reduce(0) { $0 + $1.bytes } } }
    /// The checkpoints resident, by name.
    public var loadedNames: [String] { names(of: "model") }
    /// The ControlNets resident, by name.
    public var loadedControlNets: [String] { names(of: "controlnet") }

    /// The resident models of `kind` that are `M`s.
    func residents<M: Sendable>(_ kind: String, as: M.Type) -> [M] {
        entries.withLock { $0.filter { $0.key.kind == kind }.compactMap { $0.value.model as? M } }
    }

    func names(of kind: String) -> [String] { entries.withLock { $0.keys.filter { $0.kind == kind }.map(\.name).sorted() } }

    /// Serialises loads, so two workers asking for one model load it once. Separate from `entries`, which the socket
    /// thread reads for `hello` and must never wait on a load.
    private let loading = Mutex(())

    private func cached<M: Sendable>(_ key: Key, as: M.Type) -> M? {
        entries.withLock { cache in
            guard var hit = cache[key], let model = hit.model as? M else { return nil }
            hit.lastUsed = Date()
            cache[key] = hit
            return model
        }
    }

    /// The resident model `name` of `kind`, loading it (`bytes` once loaded) and unloading the least recently used
    /// ones when needed. `resource_exhausted` when it alone passes the budget, `model_not_found` when it fails to load.
    func resident<M: Sendable>(_ kind: String, _ name: String, bytes: Int,
                               load: () throws -> M) throws(ProtocolError) -> M {
        let key = Key(kind: kind, name: name)
        if let hit = cached(key, as: M.self) { return hit }
        let result: Result<M, ProtocolError> = loading.withLock { _ in
            if let hit = cached(key, as: M.self) { return .success(hit) }
            guard bytes <= budgetBytes else {
                return .failure(ProtocolError(.resourceExhausted, "\(kind) \(name) needs \(bytes >> 20) MiB, over the memory budget of \(budgetBytes >> 20) MiB",
                                              details: [kind: .string(name), "bytes": JSONValue(bytes), "budget_bytes": JSONValue(budgetBytes)]))
            }
            entries.withLock { cache in
                while cache.values.reduce(0, { $0 + $1.bytes }) + bytes > budgetBytes,
                      let oldest = cache.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                    cache[oldest] = nil
                }
            }
            do {
                let model = try load()
                entries.withLock { $0[key] = Entry(model: model, bytes: bytes, lastUsed: Date()) }
                return .success(model)
            } catch {
                return .failure(ProtocolError(.modelNotFound, "cannot load \(kind) \(name): \(error)", details: [kind: .string(name)]))
            }
        }
        return try result.get()
    }

    /// Whether `name` of `kind` is resident.
    func holds(_ kind: String, _ name: String) -> Bool { entries.withLock { $0[Key(kind: kind, name: name)] != nil } }

    /// Drops every resident entry of `kind` but `name`.
    func remove(kind: String, except name: String) {
        entries.withLock { cache in
            for key in cache.keys where key.kind == kind && key.name != name { cache[key] = nil }
        }
    }

    /// Bytes the weights of a `.safetensors` file take once loaded (stored dtype, from its header); 0 when unreadable.
    public static func weightBytes(file path: String) -> Int { (try? SafeTensorsFile(path: path))?.storedBytes ?? 0 }

    /// The same for a component folder's weights file (`name[.fp16].safetensors`, as the loaders pick it).
    public static func weightBytes(folder: String, name: String) -> Int {
        weightBytes(file: WeightStore.componentFile(folder: folder, name: name))
    }

    /// The pipeline of `path` (a pipeline folder or single-file checkpoint named `name`).
    public func pipeline(_ name: String, path: String) throws(ProtocolError) -> StableDiffusionPipeline {
        try resident("model", name, bytes: StableDiffusionModel.residentBytes(path: path)) { try StableDiffusionModel.load(path: path) }
    }

    /// The ControlNet of `path` (a diffusers folder or an original-layout single file named `name`).
    public func controlNet(_ name: String, path: String) throws(ProtocolError) -> ControlNetModel {
        try resident("controlnet", name, bytes: ControlNetLibrary.residentBytes(path: path)) { try ControlNetLibrary.load(path: path) }
    }

    public func removeAll() { entries.withLock { $0.removeAll() } }
}
