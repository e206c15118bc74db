// PaintsDiffusion/Weights/WeightStore: named weights from one or more safetensors files, scoped by key prefix.
import Foundation
import PaintsTensor

/// Weights by their checkpoint key. Blocks take a store scoped to their own prefix (`down_blocks.0.resnets.1.`), so a
/// weight's full key is the chain of block names, as in the checkpoint.
public struct WeightStore: Sendable {
    let files: [SafeTensorsFile]
    /// The scope: prepended to every key looked up.
    let prefix: String
    /// diffusers key -> key in the file, for checkpoints in another layout (original LDM single files).
    let aliases: [String: String]
    /// diffusers keys whose stored 1x1 convolution kernels [O, I, 1, 1] are read as matrices [O, I].
    let squeezed: Set<String>
    /// diffusers keys that are row ranges of one stored tensor (OpenCLIP's fused q/k/v `in_proj_weight`).
    let slices: [String: Slice]

    public struct Slice: Sendable {
        public var key: String
        public var rows: Range<Int>
        public init(key: String, rows: Range<Int>) {
            self.key = key
            self.rows = rows
        }
    }

    public init(files: [SafeTensorsFile], prefix: String = "", aliases: [String: String] = [:], squeezed: Set<String> = [],
                slices: [String: Slice] = [:]) {
        self.files = files
        self.prefix = prefix
        self.aliases = aliases
        self.squeezed = squeezed
        self.slices = slices
    }

    public init(path: String) throws(WeightError) {
        self.init(files: [try SafeTensorsFile(path: path)])
    }

    /// Which weights file of a diffusers component folder is read: the `fp16` variant when the folder has one
    /// (`diffusion_pytorch_model.fp16.safetensors`, as published repositories ship it: half the memory, compute stays
    /// float32), else the plain file. `variant: ""` forces the plain file.
    public static func componentFile(folder: String, name: String, variant: String? = nil) -> String {
        let plain = "\(folder)/\(name).safetensors"
        let preferred = variant ?? "fp16"
        guard !preferred.isEmpty else { return plain }
        let candidate = "\(folder)/\(name).\(preferred).safetensors"
        return FileManager.default.fileExists(atPath: candidate) ? candidate : plain
    }

    /// The weights of a diffusers component folder (see `componentFile`).
    public init(folder: String, name: String, variant: String? = nil) throws(WeightError) {
        try self.init(path: Self.componentFile(folder: folder, name: name, variant: variant))
    }

    /// The store for a child block: `scoped("conv1")` reads `prefix + "conv1." + key`.
    public func scoped(_ name: String) -> WeightStore {
        WeightStore(files: files, prefix: prefix + name + ".", aliases: aliases, squeezed: squeezed, slices: slices)
    }

    /// The file key of a diffusers key under this scope.
    private func stored(_ key: String) -> String { aliases[prefix + key] ?? prefix + key }

    public func contains(_ key: String) -> Bool {
        if let slice = slices[prefix + key] { return files.contains { $0.entries[slice.key] != nil } }
        return files.contains { $0.entries[stored(key)] != nil }
    }

    /// The tensor at `key` under this scope as float32, optionally checking its shape.
    public func tensor(_ key: String, shape: [Int]? = nil) throws(WeightError) -> Tensor {
        try weight(key, shape: shape).tensor()
    }

    /// The weight at `key` under this scope, kept in its stored dtype and place, optionally checking its shape.
    public func weight(_ key: String, shape: [Int]? = nil) throws(WeightError) -> Weight {
        if let slice = slices[prefix + key] {
            guard let file = files.first(where: { $0.entries[slice.key] != nil }) else { throw .missingTensor(prefix + key) }
            let whole = try file.weight(slice.key)
            guard whole.rank >= 1, slice.rows.upperBound <= whole.shape[0] else {
                throw .shapeMismatch(tensor: slice.key, expected: [slice.rows.upperBound], actual: whole.shape)
            }
            let t = whole.rows(slice.rows)
            if let shape, t.shape != shape { throw .shapeMismatch(tensor: prefix + key, expected: shape, actual: t.shape) }
            return t
        }
        let full = stored(key)
        guard let file = files.first(where: { $0.entries[full] != nil }) else { throw .missingTensor(prefix + key) }
        var t = try file.weight(full)
        if squeezed.contains(prefix + key), t.rank == 4, t.shape[2] == 1, t.shape[3] == 1 { t = t.reshaped([t.shape[0], t.shape[1]]) }
        if let shape, t.shape != shape { throw .shapeMismatch(tensor: prefix + key, expected: shape, actual: t.shape) }
        return t
    }

    /// The shape stored at `key`, without reading it.
    public func shape(_ key: String) throws(WeightError) -> [Int] {
        if slices[prefix + key] != nil { return try weight(key).shape }
        guard let e = files.lazy.compactMap({ $0.entries[stored(key)] }).first else { throw .missingTensor(prefix + key) }
        return squeezed.contains(prefix + key) && e.shape.count == 4 ? Array(e.shape.prefix(2)) : e.shape
    }

    /// Every key under this scope, in diffusers naming when the store has aliases.
    public var keys: [String] {
        let all = aliases.isEmpty && slices.isEmpty ? files.flatMap(\.names) : Array(aliases.keys) + Array(slices.keys)
        return all.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }
}
