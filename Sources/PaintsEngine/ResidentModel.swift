// PaintsEngine/ResidentModel: one model kept in memory by name, loaded once on first use.
import PaintsProtocol
import Synchronization

/// The resident model of an engine that serves one at a time: loaded on first use (concurrent first uses wait for a
/// single load), replaced when another name is asked for. Readers of `loadedName` (the socket thread, for `hello`)
/// never wait on a load.
final class ResidentModel<Model: Sendable>: Sendable {
    private let current = Mutex<(name: String, model: Model)?>(nil)
    private let loading = Mutex(())

    var loadedName: String? { current.withLock { $0?.name } }

    func model(_ name: String, load: () throws(ProtocolError) -> Model) throws(ProtocolError) -> Model {
        if let hit = cached(name) { return hit }
        let result: Result<Model, ProtocolError> = loading.withLock { _ in
            if let hit = cached(name) { return .success(hit) }
            do throws(ProtocolError) {
                let model = try load()
                current.withLock { $0 = (name, model) }
                return .success(model)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func cached(_ name: String) -> Model? { current.withLock { $0?.name == name ? $0?.model : nil } }

    func unload() { current.withLock { $0 = nil } }
}
