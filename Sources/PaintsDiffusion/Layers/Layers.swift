// PaintsDiffusion/Layers: the parameterised layers blocks are made of (Conv2d, Linear, GroupNorm, LayerNorm),
// each reading `weight` and `bias` from its scope.
import Foundation
import PaintsTensor

/// Any error a model raises while loading or running: weights (missing, wrong shape, bad file) or tensor shapes.
public enum ModelError: Error, Sendable, CustomStringConvertible {
    case weights(WeightError)
    case tensor(TensorError)
    case configuration(String)

    public var description: String {
        switch self {
        case .weights(let e): "\(e)"
        case .tensor(let e): "\(e)"
        case .configuration(let m): m
        }
    }
}

/// Reads a component folder's `config.json` as a JSON object.
func readConfiguration(folder: String) throws(ModelError) -> (json: [String: Any], path: String) {
    let path = folder + "/config.json"
    guard let json = RegularFile.jsonObject(path)
    else { throw .configuration("\(path): missing, not a regular file of at most 16 MiB, or not a JSON object") }
    return (json, path)
}

/// Runs tensor code, mapping its errors into `ModelError`.
@inline(__always)
public func compute<T>(_ body: () throws(TensorError) -> T) throws(ModelError) -> T {
    do { return try body() } catch { throw .tensor(error) }
}

/// Where a model stops when its job is cancelled (`ComputeCancellation`): at the start of every block.
@inlinable public func cancellationPoint() throws(ModelError) {
    if ComputeCancellation.isRequested { throw .tensor(.cancelled) }
}

extension WeightStore {
    /// The tensor at `key` as float32 (checking `shape` when given), failing as a `ModelError`.
    public func load(_ key: String, shape: [Int]? = nil) throws(ModelError) -> Tensor {
        do { return try tensor(key, shape: shape) } catch { throw .weights(error) }
    }

    /// The weight at `key` in its stored dtype and place, failing as a `ModelError`.
    public func loadWeight(_ key: String) throws(ModelError) -> Weight {
        do { return try weight(key) } catch { throw .weights(error) }
    }
}

public struct Conv2d: Sendable {
    public let weight: Weight
    public let bias: Tensor?
    public let stride: Int
    public let padding: Int
    /// The module path (`down_blocks.0.resnets.0.conv1`): what a bound LoRA finds the layer by.
    public let name: String

    /// Reads `weight` [O, I, K, K] (and `bias` [O] when present); padding defaults to K/2.
    public init(_ w: WeightStore, stride: Int = 1, padding: Int? = nil) throws(ModelError) {
        name = String(w.prefix.dropLast())
        weight = try w.loadWeight("weight")
        guard weight.rank == 4, weight.shape.allSatisfy({ $0 >= 1 }) else {
            throw .configuration("\(w.prefix)weight: expected a 4-d convolution kernel, got \(weight.shape)")
        }
        guard stride >= 1, (padding ?? 0) >= 0 else { throw .configuration("\(w.prefix)weight: stride \(stride), padding \(padding ?? 0)") }
        let outputs = weight.shape[0]
        bias = w.contains("bias") ? try w.load("bias", shape: [outputs]) : nil
        self.stride = stride
        self.padding = padding ?? weight.shape[2] / 2
    }

    public var inChannels: Int { weight.shape[1] }
    public var outChannels: Int { weight.shape[0] }

    public func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        let w = LoRABinding.weight(for: name) ?? weight
        let y = try compute { () throws(TensorError) in try x.conv2d(weight: w, bias: bias, stride: stride, padding: padding) }
        return try LoRABinding.adding(to: y, input: x, layer: name)
    }
}

public struct Linear: Sendable {
    public let weight: Weight
    public let bias: Tensor?
    /// The module path (`...attn1.to_q`): what a bound LoRA finds the layer by.
    public let name: String

    public init(_ w: WeightStore) throws(ModelError) {
        name = String(w.prefix.dropLast())
        weight = try w.loadWeight("weight")
        guard weight.rank == 2, weight.shape.allSatisfy({ $0 >= 1 }) else {
            throw .configuration("\(w.prefix)weight: expected a matrix, got \(weight.shape)")
        }
        let outputs = weight.shape[0]
        bias = w.contains("bias") ? try w.load("bias", shape: [outputs]) : nil
    }

    public var outFeatures: Int { weight.shape[0] }
    public var inFeatures: Int { weight.shape[1] }

    public func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        let w = LoRABinding.weight(for: name) ?? weight
        let y = try compute { () throws(TensorError) in try x.linear(weight: w, bias: bias) }
        return try LoRABinding.adding(to: y, input: x, layer: name)
    }

    /// The layer, then y * sigmoid(gate * y) (1.702: CLIP's quick GELU), then plus `residual`: in the product's
    /// epilogue where the kernel has one. A bound LoRA's terms come before the gate (the gate is then applied apart)
    /// and commute with the residual.
    public func callAsFunction(_ x: Tensor, gate: Float? = nil, adding residual: Tensor? = nil) throws(ModelError) -> Tensor {
        let w = LoRABinding.weight(for: name) ?? weight
        guard gate == nil || !LoRABinding.addsTerms(to: name) else {
            let y = try LoRABinding.adding(to: try compute { () throws(TensorError) in try x.linear(weight: w, bias: bias) },
                                           input: x, layer: name).sigmoidGated(k: gate!)
            return residual.map { y + $0 } ?? y
        }
        let y = try compute { () throws(TensorError) in try x.linear(weight: w, bias: bias, gate: gate, adding: residual) }
        return try LoRABinding.adding(to: y, input: x, layer: name)
    }
}

extension Linear {
    /// Layers of one input (attention's q, k and v projections, or k and v of one context): each layer's output in
    /// order, with a bound LoRA's merged weight or terms, as calling each would give; on panels x is packed once for
    /// all (`Tensor.linear(_:)`).
    public static func outputs(of layers: [Linear], for x: Tensor) throws(ModelError) -> [Tensor] {
        let weights = layers.map { (weight: LoRABinding.weight(for: $0.name) ?? $0.weight, bias: $0.bias) }
        let products = try compute { () throws(TensorError) in try x.linear(weights) }
        var outputs: [Tensor] = []
        for (layer, y) in zip(layers, products) { outputs.append(try LoRABinding.adding(to: y, input: x, layer: layer.name)) }
        return outputs
    }
}

public struct GroupNorm: Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let groups: Int
    public let epsilon: Float

    public init(_ w: WeightStore, groups: Int, epsilon: Float) throws(ModelError) {
        guard groups >= 1 else { throw .configuration("\(w.prefix)weight: \(groups) groups") }
        weight = try w.load("weight")
        let channels = weight.shape
        bias = try w.load("bias", shape: channels)
        guard weight.rank == 1, weight.shape[0] >= 1, weight.shape[0] % groups == 0 else {
            throw .configuration("\(w.prefix)weight: \(weight.shape) channels do not split into \(groups) groups")
        }
        self.groups = groups
        self.epsilon = epsilon
    }

    /// Normalizes `x` in its own storage when it comes with its last use (`consume x`), else a copy.
    public func callAsFunction(_ x: consuming Tensor, silu: Bool = false) throws(ModelError) -> Tensor {
        do { return try (consume x).groupNorm(groups: groups, weight: weight, bias: bias, epsilon: epsilon, silu: silu) } catch {
            throw .tensor(error)
        }
    }
}

public struct LayerNorm: Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let epsilon: Float

    public init(_ w: WeightStore, epsilon: Float = 1e-5) throws(ModelError) {
        weight = try w.load("weight")
        let channels = weight.shape
        guard weight.rank == 1, weight.shape[0] >= 1 else { throw .configuration("\(w.prefix)weight: expected a vector, got \(weight.shape)") }
        bias = try w.load("bias", shape: channels)
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) throws(ModelError) -> Tensor {
        try compute { () throws(TensorError) in try x.layerNorm(weight: weight, bias: bias, epsilon: epsilon) }
    }
}
