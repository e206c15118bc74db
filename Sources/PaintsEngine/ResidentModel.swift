// PaintsEngine/ResidentModel: an engine's model folders in the models directory, and the one kept in memory.
import Foundation
import PaintsProtocol
import Synchronization

/// The models of an engine that serves one at a time: the folders of the models directory it recognises, by name,
/// and the resident one, loaded on first use (concurrent first uses wait for a single load) and replaced when another
/// name is asked for. Readers of `loadedName` (the socket thread, for `hello`) never wait on a load.
final class ResidentModel<Model: Sendable>: Sendable {
    let directory: String
    /// What the models are, for messages ("WD tagger").
    let kind: String
    private let isModelFolder: @Sendable (String) -> Bool
    private let load: @Sendable (String) throws -> Model
    private let current = Mutex<(name: String, model: Model)?>(nil)
    private let loading = Mutex(())

    /// `isModelFolder` and `load` take a folder's path.
    init(directory: String, kind: String, isModelFolder: @escaping @Sendable (String) -> Bool,
         load: @escaping @Sendable (String) throws -> Model) {
        self.directory = directory
        self.kind = kind
        self.isModelFolder = isModelFolder
        self.load = load
    }

    /// The model folders in the directory, by name, sorted.
    var available: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().filter { isModelFolder(directory + "/" + $0) }
    }

    var loadedName: String? { current.withLock { $0?.name } }

    func path(of name: String) -> String { directory + "/" + name }

    /// The model `name` (the first available when nil), loaded once and kept. `model_not_found` when there is none
    /// (with `missingDetails`), when `name` is not a model folder, or when it fails to load.
    func model(named name: String?, missingDetails: [String: JSONValue] = [:]) throws(ProtocolError) -> Model {
        let names = available
        guard let wanted = name ?? names.first else {
            throw ProtocolError(.modelNotFound, "no \(kind) in \(directory)", details: missingDetails)
        }
        guard names.contains(wanted) else {
            throw ProtocolError(.modelNotFound, "no \(kind) \"\(wanted)\"", details: ["available": .array(names.map { .string($0) })])
        }
        if let hit = cached(wanted) { return hit }
        let result: Result<Model, ProtocolError> = loading.withLock { _ in
            if let hit = cached(wanted) { return .success(hit) }
            // Only the model asked for stays: the one resident before goes first (jobs still running keep theirs),
            // so two models are never held for one engine's sake.
            current.withLock { $0 = nil }
            do {
                let model = try load(path(of: wanted))
                current.withLock { $0 = (wanted, model) }
                return .success(model)
            } catch {
                return .failure(ProtocolError(.modelNotFound, "cannot load \(kind) \(wanted): \(error)", details: ["model": .string(wanted)]))
            }
        }
        return try result.get()
    }

    private func cached(_ name: String) -> Model? { current.withLock { $0?.name == name ? $0?.model : nil } }

    func unload() { current.withLock { $0 = nil } }
}
