// PaintsTagger/WDTagger: the WD v3 Danbooru taggers (SmilingWolf wd-vit-tagger-v3, wd-convnext-tagger-v3) as timm
// publishes them: config.json, model.safetensors with timm's key names, selected_tags.csv.
// Matches: timm 1.0 VisionTransformer (no class token, mean pooling, final norm before pooling) and ConvNeXt
// (LayerNorm2d stem and downsamples, 7x7 depthwise blocks with layer scale, NormMlpClassifierHead).
import Foundation
import PaintsDiffusion
import PaintsTensor

/// A tagger network: a BGR image in -1...1 [N, 3, S, S] to one logit per label.
public protocol TaggerNetwork: Sendable {
    func logits(_ image: Tensor) throws(ModelError) -> Tensor
}

/// What config.json says of the model's input (timm `pretrained_cfg`).
public struct TaggerInput: Sendable, Equatable {
    /// Side of the square input.
    public var size: Int
    public var mean: [Float]
    public var std: [Float]
}

public struct WDTagger: Sendable {
    public let architecture: String
    public let network: any TaggerNetwork
    public let input: TaggerInput
    public let labels: TagLabels

    /// Whether `folder` holds a timm tagger (config.json with an architecture, model.safetensors, selected_tags.csv).
    public static func isModelFolder(_ folder: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder + "/config.json") && fm.fileExists(atPath: folder + "/model.safetensors")
            && fm.fileExists(atPath: folder + "/selected_tags.csv")
    }

    public init(folder: String) throws(ModelError) {
        let path = folder + "/config.json"
        // Read only as a regular file of at most 16 MiB (a named pipe would block, a device never end).
        guard let json = RegularFile.jsonObject(path), let architecture = json["architecture"] as? String
        else { throw .configuration("\(path): a timm config.json (a regular file) with \"architecture\" is required") }
        self.architecture = architecture
        let arguments = json["model_args"] as? [String: Any] ?? [:]
        let pretrained = json["pretrained_cfg"] as? [String: Any] ?? [:]
        let weights: WeightStore
        do { weights = try WeightStore(path: folder + "/model.safetensors") } catch { throw .weights(error) }
        if architecture.hasPrefix("vit_") {
            network = try VisionTransformerTagger(weights, arguments: arguments)
        } else if architecture.hasPrefix("convnext") {
            network = try ConvNeXtTagger(weights)
        } else {
            throw .configuration("\(path): architecture \(architecture) is not supported (vit_* and convnext* are)")
        }
        func floats(_ key: String) -> [Float]? { (pretrained[key] as? [NSNumber])?.map { $0.floatValue } }
        // The input side and the per-channel normalisation are checked: the input tensor is built from them.
        let sideValue = (pretrained["input_size"] as? [NSNumber])?.last ?? (arguments["img_size"] as? NSNumber)
        let size: Int
        if let sideValue {
            guard let side = Int(exactly: sideValue.doubleValue), (1...1024).contains(side) else {
                throw .configuration("\(path): the input size \(sideValue) is not a side of 1 to 1024 pixels (WD taggers take 448)")
            }
            size = side
        } else {
            size = 448
        }
        let mean = floats("mean") ?? [0.5, 0.5, 0.5], std = floats("std") ?? [0.5, 0.5, 0.5]
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 != 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw .configuration("\(path): pretrained_cfg mean and std need three finite values (std not zero)")
        }
        input = TaggerInput(size: size, mean: mean, std: std)
        labels = try TagLabels(path: folder + "/selected_tags.csv")
        let classes = try network.logits(Tensor(zeros: [1, 3, size, size])).shape[1]
        guard classes == labels.names.count else {
            throw .configuration("\(folder): the head has \(classes) outputs, selected_tags.csv \(labels.names.count) labels")
        }
    }

    /// Label probabilities (sigmoid of the logits) of a prepared input [1, 3, S, S].
    public func probabilities(_ image: Tensor) throws(ModelError) -> [Float] {
        try network.logits(image).data.map { 1 / (1 + Foundation.exp(-$0)) }
    }

    /// The network input from RGB pixels (row-major, 0...255, `width` x `height`, already square and `input.size`
    /// wide): channels reversed to BGR and normalised by mean and std (timm's transform, then `[:, [2, 1, 0]]`).
    public func inputTensor(rgb: [Float], side: Int) -> Tensor {
        var out = Tensor(zeros: [1, 3, side, side])
        let plane = side * side
        for p in 0..<plane {
            for c in 0..<3 {
                let source = 2 - c       // BGR
                out.data[c * plane + p] = (rgb[p * 3 + source] / 255 - input.mean[source]) / input.std[source]
            }
        }
        return out
    }
}

/// timm VisionTransformer as the WD v3 ViT uses it: patch embedding, learned positions, pre-norm blocks
/// (LayerNorm eps 1e-6, fused qkv, tanh GELU MLP), final norm, mean over tokens, linear head.
struct VisionTransformerTagger: TaggerNetwork {
    let patch: Conv2d
    let positions: Tensor
    let blocks: [Block]
    let norm: LayerNorm
    let head: Linear
    let heads: Int
    let tanhGELU: Bool

    struct Block: Sendable {
        let norm1: LayerNorm, norm2: LayerNorm
        let qkv: Linear, proj: Linear, fc1: Linear, fc2: Linear
    }

    init(_ w: WeightStore, arguments: [String: Any]) throws(ModelError) {
        let patchShape: [Int]
        do { patchShape = try w.shape("patch_embed.proj.weight") } catch { throw .weights(error) }
        guard patchShape.count == 4 else { throw .configuration("patch_embed.proj.weight: \(patchShape)") }
        patch = try Conv2d(w.scoped("patch_embed.proj"), stride: patchShape[2], padding: 0)
        positions = try w.load("pos_embed")
        guard !w.contains("cls_token") else { throw .configuration("ViT taggers with a class token are not supported") }
        var blocks: [Block] = []
        while w.contains("blocks.\(blocks.count).norm1.weight") {
            let b = w.scoped("blocks.\(blocks.count)")
            blocks.append(Block(norm1: try LayerNorm(b.scoped("norm1"), epsilon: 1e-6), norm2: try LayerNorm(b.scoped("norm2"), epsilon: 1e-6),
                                qkv: try Linear(b.scoped("attn.qkv")), proj: try Linear(b.scoped("attn.proj")),
                                fc1: try Linear(b.scoped("mlp.fc1")), fc2: try Linear(b.scoped("mlp.fc2"))))
        }
        self.blocks = blocks
        norm = try LayerNorm(w.scoped("norm"), epsilon: 1e-6)
        head = try Linear(w.scoped("head"))
        // Shapes cannot tell the head count; timm's ViT sizes (tiny .. huge) all use 64-wide heads.
        let d = patch.outChannels
        if let n = arguments["num_heads"] as? NSNumber {
            guard let h = Int(exactly: n.doubleValue), h >= 1, d % h == 0 else {
                throw .configuration("model_args.num_heads \(n) does not split the width \(d)")
            }
            heads = h
        } else {
            heads = max(1, d / 64)
        }
        tanhGELU = (arguments["act_layer"] as? String).map { $0 == "gelu_tanh" } ?? false
        // What the forward pass indexes by: the fused q/k/v rows, the residual sums, the pooled width.
        try Self.check(positions.rank == 3 && positions.shape[0] == 1 && positions.shape[2] == d,
                       "pos_embed: \(positions.shape) does not fit the width \(d)")
        try Self.check(d % heads == 0, "the width \(d) does not split into \(heads) heads")
        for (i, b) in blocks.enumerated() {
            try Self.check(b.norm1.weight.shape == [d] && b.norm2.weight.shape == [d] && b.qkv.inFeatures == d && b.qkv.outFeatures == 3 * d
                           && b.proj.inFeatures == d && b.proj.outFeatures == d && b.fc1.inFeatures == d
                           && b.fc2.inFeatures == b.fc1.outFeatures && b.fc2.outFeatures == d,
                           "blocks.\(i): the shapes do not fit the width \(d)")
        }
        try Self.check(norm.weight.shape == [d] && head.inFeatures == d, "norm/head: the shapes do not fit the width \(d)")
    }

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(ModelError) {
        guard condition else { throw .configuration(message()) }
    }

    func logits(_ image: Tensor) throws(ModelError) -> Tensor {
        var x = try patch(image).tokens()                  // [N, L, D]
        guard positions.shape == [1, x.shape[1], x.shape[2]] else {
            throw .configuration("pos_embed \(positions.shape) does not fit \(x.shape[1]) patches (input size?)")
        }
        let (n, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        for b in 0..<n { for i in 0..<(l * d) { x.data[b * l * d + i] += positions.data[i] } }
        for block in blocks {
            try cancellationPoint()
            let qkv = try block.qkv(try block.norm1(x))       // [N, L, 3D]
            var q = Tensor(zeros: [n, l, d]), k = q, v = q
            for row in 0..<(n * l) {
                q.data.replaceSubrange((row * d)..<((row + 1) * d), with: qkv.data[(row * 3 * d)..<(row * 3 * d + d)])
                k.data.replaceSubrange((row * d)..<((row + 1) * d), with: qkv.data[(row * 3 * d + d)..<(row * 3 * d + 2 * d)])
                v.data.replaceSubrange((row * d)..<((row + 1) * d), with: qkv.data[(row * 3 * d + 2 * d)..<((row + 1) * 3 * d)])
            }
            let attended = try compute { () throws(TensorError) in try Tensor.attention(query: q, key: k, value: v, heads: heads) }
            x = x + (try block.proj(attended))
            let hidden = try block.fc1(try block.norm2(x))
            x = x + (try block.fc2(tanhGELU ? hidden.geluTanh() : hidden.gelu()))
        }
        x = try norm(x)
        var pooled = Tensor(zeros: [n, d])
        for b in 0..<n {
            for t in 0..<l { for i in 0..<d { pooled.data[b * d + i] += x.data[(b * l + t) * d + i] } }
            for i in 0..<d { pooled.data[b * d + i] /= Float(l) }
        }
        return try head(pooled)
    }
}

/// timm ConvNeXt: 4x4/4 stem conv + LayerNorm2d; stages of [LayerNorm2d + 2x2/2 conv downsample] and blocks
/// (7x7 depthwise conv, LayerNorm, Linear 4x, GELU, Linear, layer scale `gamma`, residual); mean pool, LayerNorm, fc.
/// Depths and widths come from the tensors.
struct ConvNeXtTagger: TaggerNetwork {
    let stem: Conv2d
    let stemNorm: LayerNorm
    let stages: [Stage]
    let headNorm: LayerNorm
    let head: Linear

    struct Stage: Sendable {
        let downsample: (norm: LayerNorm, conv: Conv2d)?
        let blocks: [Block]
    }

    struct Block: Sendable {
        let dwWeight: Tensor, dwBias: Tensor
        let norm: LayerNorm
        let fc1: Linear, fc2: Linear
        let gamma: Tensor?
    }

    init(_ w: WeightStore) throws(ModelError) {
        stem = try Conv2d(w.scoped("stem.0"), stride: 4, padding: 0)
        stemNorm = try LayerNorm(w.scoped("stem.1"), epsilon: 1e-6)
        var stages: [Stage] = []
        while w.contains("stages.\(stages.count).blocks.0.conv_dw.weight") {
            let s = w.scoped("stages.\(stages.count)")
            let downsample = s.contains("downsample.1.weight")
                ? (try LayerNorm(s.scoped("downsample.0"), epsilon: 1e-6), try Conv2d(s.scoped("downsample.1"), stride: 2, padding: 0)) : nil
            var blocks: [Block] = []
            while s.contains("blocks.\(blocks.count).conv_dw.weight") {
                let b = s.scoped("blocks.\(blocks.count)")
                blocks.append(Block(dwWeight: try b.load("conv_dw.weight"), dwBias: try b.load("conv_dw.bias"),
                                    norm: try LayerNorm(b.scoped("norm"), epsilon: 1e-6), fc1: try Linear(b.scoped("mlp.fc1")),
                                    fc2: try Linear(b.scoped("mlp.fc2")), gamma: b.contains("gamma") ? try b.load("gamma") : nil))
            }
            stages.append(Stage(downsample: downsample, blocks: blocks))
        }
        guard !stages.isEmpty else { throw .configuration("no ConvNeXt stages (stages.0.blocks.0.conv_dw.weight)") }
        self.stages = stages
        headNorm = try LayerNorm(w.scoped("head.norm"), epsilon: 1e-6)
        head = try Linear(w.scoped("head.fc"))
        // The channel flow, as the forward pass runs it: every residual sum adds equal shapes, the depthwise kernels
        // keep the size, layer scale has one value per channel.
        func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(ModelError) {
            guard condition else { throw .configuration(message()) }
        }
        var c = stem.outChannels
        try check(stemNorm.weight.shape == [c], "stem.1: \(stemNorm.weight.shape) does not fit \(c) channels")
        for (i, stage) in stages.enumerated() {
            if let (norm, conv) = stage.downsample {
                try check(norm.weight.shape == [c] && conv.inChannels == c, "stages.\(i).downsample: does not take \(c) channels")
                c = conv.outChannels
            }
            for (j, b) in stage.blocks.enumerated() {
                let k = b.dwWeight.shape
                try check(k.count == 4 && k[0] == c && k[1] == 1 && k[2] == k[3] && k[2] % 2 == 1 && b.dwBias.shape == [c]
                          && b.norm.weight.shape == [c] && b.fc1.inFeatures == c && b.fc2.inFeatures == b.fc1.outFeatures
                          && b.fc2.outFeatures == c && (b.gamma.map { $0.shape == [c] } ?? true),
                          "stages.\(i).blocks.\(j): the shapes do not fit \(c) channels")
            }
        }
        try check(headNorm.weight.shape == [c] && head.inFeatures == c, "head: the shapes do not fit \(c) channels")
    }

    /// LayerNorm over the channels of NCHW (timm LayerNorm2d).
    static func channelNorm(_ x: Tensor, _ norm: LayerNorm) throws(ModelError) -> Tensor {
        try norm(x.tokens()).image(height: x.shape[2], width: x.shape[3])
    }

    func logits(_ image: Tensor) throws(ModelError) -> Tensor {
        var x = try Self.channelNorm(try stem(image), stemNorm)
        for stage in stages {
            if let (norm, conv) = stage.downsample { x = try conv(try Self.channelNorm(x, norm)) }
            for block in stage.blocks {
                try cancellationPoint()
                let (h, w) = (x.shape[2], x.shape[3])
                let mixed = try compute { () throws(TensorError) in
                    try x.depthwiseConv2d(weight: block.dwWeight, bias: block.dwBias, padding: block.dwWeight.shape[2] / 2)
                }
                var y = try block.fc2(try block.fc1(try block.norm(mixed.tokens())).gelu())   // [N, HW, C]
                if let gamma = block.gamma {
                    let c = gamma.count
                    for i in 0..<y.count { y.data[i] *= gamma.data[i % c] }
                }
                x = x + y.image(height: h, width: w)
            }
        }
        let (n, c, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        var pooled = Tensor(zeros: [n, c])
        for b in 0..<n {
            for ch in 0..<c {
                var sum: Float = 0
                for p in 0..<plane { sum += x.data[(b * c + ch) * plane + p] }
                pooled.data[b * c + ch] = sum / Float(plane)
            }
        }
        return try head(try headNorm(pooled))
    }
}
