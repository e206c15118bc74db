// PaintsDiffusion/Weights/WeightStore: named weights from one or more safetensors files, scoped by key prefix.
import PaintsTensor

/// Weights by their checkpoint key. Blocks take a store scoped to their own prefix (`down_blocks.0.resnets.1.`), so a
/// weight's full key is the chain of block names, as in the checkpoint.
public struct WeightStore: Sendable {
    let files: [SafeTensorsFile]
    /// Key renames applied before lookup (single-file checkpoints map their keys to diffusers keys).
    let prefix: String

    public init(files: [SafeTensorsFile], prefix: String = "") {
        self.files = files
        self.prefix = prefix
    }

    public init(path: String) throws(WeightError) {
        self.init(files: [try SafeTensorsFile(path: path)])
    }

    /// The store for a child block: `scoped("conv1")` reads `prefix + "conv1." + key`.
    public func scoped(_ name: String) -> WeightStore { WeightStore(files: files, prefix: prefix + name + ".") }

    public func contains(_ key: String) -> Bool { files.contains { $0.entries[prefix + key] != nil } }

    /// The tensor at `key` under this scope, optionally checking its shape.
    public func tensor(_ key: String, shape: [Int]? = nil) throws(WeightError) -> Tensor {
        let full = prefix + key
        guard let file = files.first(where: { $0.entries[full] != nil }) else { throw .missingTensor(full) }
        let t = try file.tensor(full)
        if let shape, t.shape != shape { throw .shapeMismatch(tensor: full, expected: shape, actual: t.shape) }
        return t
    }

    /// The shape stored at `key`, without reading it.
    public func shape(_ key: String) throws(WeightError) -> [Int] {
        let full = prefix + key
        guard let e = files.lazy.compactMap({ $0.entries[full] }).first else { throw .missingTensor(full) }
        return e.shape
    }
}
