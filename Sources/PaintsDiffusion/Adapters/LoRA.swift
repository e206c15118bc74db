// PaintsDiffusion/Adapters/LoRA: low-rank adapters (LoRA, LyCORIS LoCon) in the kohya and diffusers/PEFT file layouts,
// bound onto a COPY of a UNet or a CLIP text encoder without touching its weights.
//
// Math (acceleration.md 1.3; kohya networks/lora.py, A1111, ComfyUI, sd.cpp agree): W' = W + m * (alpha / rank) * up @ down
// (no alpha: scale 1). By default paintsd does NOT fuse: every adapted Linear / Conv2d adds the unfused low-rank term
// to its output,
//   y = x W^T + b + m * s * (x down^T) up^T          (Linear; a Conv2d does the same with convolutions:
//   y = conv(x, W) + b + conv1x1(conv(x, down), m * s * up)   down with the layer's kernel size, stride and padding;
//   Tucker LoCon: conv1x1(conv(conv1x1(x, down), mid), m * s * up)).
// This equals the merged weight exactly (up to float rounding), leaves the base weights (possibly f16, memory-mapped)
// untouched, so switching LoRAs never reloads or re-merges the base model, and binding costs only reading the
// adapter's own tensors (m * s is folded into a float32 copy of `up`). The price is per-pass compute: about 2r/C of
// each adapted layer's work (r = rank, C = the layer's width).
//
// Measured (debug build, 2 busy cores): binding a rank-64 kohya LoCon file of LCM-LoRA's coverage (278 modules: all
// attention / ff / proj layers, resnets conv1 conv2 time_emb_proj conv_shortcut, down/upsamplers; 67 M parameters,
// 134 MB f16) onto the full-size SD1.5 UNet: reading 0.02-0.03 s, binding 0.23-0.28 s (widening and scaling `up`, the
// layer walk); +210 MB resident (the mapped file and the f32 `up` copies). A UNet pass at 32x32 latents was within the
// noise of the machine with and without it (2.2-3.0 s either way). Fusing instead would cost ~55 GMAC per bind and a
// float32 copy of every touched layer (up to the whole 3.4 GB UNet) per LoRA set.
//
// Merging is the other choice (`LoRABinding.merging`, `mergingLoRAs()` on the UNet and the text encoder): the terms are
// folded once into copies of the adapted layers' weights, kept at the base weight's precision (f16 stays f16: half
// the float32 cost, rounded as fusing into an f16 model rounds), and the layers run those copies instead of their own
// weights. Passes then cost what the base model's do; the copies cost memory (for a LoRA on every layer, about the
// model's size again) and one merge per LoRA set. The base weights stay untouched either way.
//
// Keys that match no layer are an error listing them (`applied(to:)`), as are keys of any form or component paintsd does
// not read (`init(path:)`): a LoRA is applied whole or not at all, never partly and silently.
//
// The binding reaches the layers by name: `Linear` and `Conv2d` keep their diffusers module path (`name`), and the
// UNet / text encoder run their pass with their `LoRABinding` as a task-local value (`LoRABinding.current`), which
// the layers consult. A model without a binding does exactly what it did before.
import Foundation
import PaintsTensor

/// One adapter file: its modules grouped by the component they adapt ("unet", "text_encoder").
public struct LoRA: Sendable {
    public let path: String
    /// Component -> module key (underscored for kohya, dotted for PEFT) -> module.
    let modules: [String: [String: Module]]

    struct Module: Sendable {
        /// The key as written in the file, before the suffix (reported when it matches no layer).
        var fileKey: String
        var down: Weight?
        var up: Weight?
        var mid: Weight?
        var alpha: Float?
        /// rsLoRA (PEFT `use_rslora`): the scale is alpha / sqrt(rank).
        var rootRank = false
    }

    /// The file's layout, for messages.
    public enum Format: String, Sendable { case kohya, peft }
    public let format: Format

    /// Reads a LoRA / LoCon .safetensors file (kohya `lora_unet_*`/`lora_te_*` with lora_down/lora_up/alpha and optional
    /// lora_mid, or diffusers/PEFT `unet.*`/`text_encoder.*` with lora_A/lora_B). LoHa, LoKr, DoRA, full diffs and
    /// keys of any other form or component are refused with the keys named.
    public init(path: String) throws(ModelError) {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path) } catch { throw .weights(error) }
        self.path = path
        var modules: [String: [String: Module]] = [:]
        var unrecognised: [String] = [], otherComponents: Set<String> = []
        var kohya = 0, peft = 0
        // LyCORIS algorithms paintsd does not implement: named, not silently skipped.
        let refused: [(marker: String, name: String)] = [
            ("hada_", "LoHa (hada_*)"), ("lokr_", "LoKr (lokr_*)"), ("dora_scale", "DoRA (dora_scale)"),
            (".diff", "full weight differences (.diff)"), ("w_norm", "norm adapters (w_norm/b_norm)"), ("b_norm", "norm adapters (w_norm/b_norm)"),
        ]
        for key in file.entries.keys.sorted() {
            if let r = refused.first(where: { key.contains($0.marker) }) {
                throw .configuration("\(path): \(r.name) adapters are not supported (key \(key)); only LoRA and LoCon are")
            }
            let suffixes: [(String, String)] = [(".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_mid.weight", "mid"),
                                                (".alpha", "alpha"), (".lora_A.weight", "down"), (".lora_B.weight", "up")]
            guard let (suffix, role) = suffixes.first(where: { key.hasSuffix($0.0) }) else { unrecognised.append(key); continue }
            let module = String(key.dropLast(suffix.count))
            let component: String, name: String
            if module.hasPrefix("lora_unet_") {
                (component, name) = ("unet", String(module.dropFirst("lora_unet_".count)))
                kohya += 1
            } else if module.hasPrefix("lora_te_") {
                (component, name) = ("text_encoder", String(module.dropFirst("lora_te_".count)))
                kohya += 1
            } else if module.hasPrefix("unet.") {
                (component, name) = ("unet", String(module.dropFirst("unet.".count)))
                peft += 1
            } else if module.hasPrefix("text_encoder.") {
                (component, name) = ("text_encoder", String(module.dropFirst("text_encoder.".count)))
                peft += 1
            } else {
                otherComponents.insert(key)
                continue
            }
            var m = modules[component]?[name] ?? Module(fileKey: module)
            let weight: Weight
            do { weight = try file.weight(key) } catch { throw .weights(error) }
            switch role {
            case "down": m.down = weight
            case "up": m.up = weight
            case "mid": m.mid = weight
            default:
                guard weight.count == 1 else { throw .configuration("\(path): \(key) holds \(weight.count) values, not one") }
                m.alpha = weight.tensor().data[0]
            }
            modules[component, default: [:]][name] = m
        }
        guard unrecognised.isEmpty else {
            throw .configuration("\(path): \(unrecognised.count) keys are not LoRA weights paintsd reads: \(Self.list(unrecognised))")
        }
        guard otherComponents.isEmpty else {
            throw .configuration("\(path): keys for components other than the UNet (lora_unet_, unet.) and the text encoder (lora_te_, text_encoder.): "
                                 + Self.list(otherComponents.sorted()))
        }
        guard !modules.isEmpty else { throw .configuration("\(path): no LoRA weights") }
        guard kohya == 0 || peft == 0 else { throw .configuration("\(path): mixes kohya (lora_*) and diffusers (unet./text_encoder.) keys") }
        for (_, byName) in modules {
            for (_, m) in byName {
                guard let down = m.down, let up = m.up else {
                    throw .configuration("\(path): \(m.fileKey) lacks its \(m.down == nil ? "down (lora_down / lora_A)" : "up (lora_up / lora_B)") weight")
                }
                guard down.rank == 2 || down.rank == 4, up.rank == 2 || up.rank == 4, down.shape[0] >= 1,
                      up.shape[1] == down.shape[0], up.rank == 2 || (up.shape[2] == 1 && up.shape[3] == 1)
                else { throw .configuration("\(path): \(m.fileKey): down \(down.shape) and up \(up.shape) are not a low-rank pair") }
                if let mid = m.mid {
                    guard mid.rank == 4, mid.shape[0] == down.shape[0], mid.shape[1] == down.shape[0], down.rank == 4,
                          down.shape[2] == 1, down.shape[3] == 1
                    else { throw .configuration("\(path): \(m.fileKey): Tucker mid \(mid.shape) does not fit down \(down.shape)") }
                }
            }
        }
        format = kohya > 0 ? .kohya : .peft
        if let raw = file.metadata["lora_adapter_metadata"] {
            try Self.applyAdapterMetadata(raw, to: &modules, path: path)
        }
        self.modules = modules
    }

    /// diffusers >= 0.35 writes each component's PEFT LoraConfig into the file's metadata (`lora_adapter_metadata`:
    /// JSON {"unet.r", "unet.lora_alpha", "unet.alpha_pattern", "unet.use_rslora", ..., "text_encoder.*"}), and loads
    /// the file with that config: scale = alpha / rank for every module without an `.alpha` tensor, alpha being the
    /// `alpha_pattern` entry that names the module (its path, or a tail of it after a "."), else `lora_alpha`.
    /// use_rslora: alpha / sqrt(rank). DoRA (use_dora) is refused.
    static func applyAdapterMetadata(_ raw: String, to modules: inout [String: [String: Module]], path: String) throws(ModelError) {
        guard let json = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [String: Any] else {
            throw .configuration("\(path): lora_adapter_metadata is not a JSON object")
        }
        for (component, byName) in modules {
            func value(_ key: String) -> Any? { json["\(component).\(key)"] }
            if (value("use_dora") as? Bool) == true {
                throw .configuration("\(path): DoRA adapters (use_dora in lora_adapter_metadata) are not supported")
            }
            let alpha = (value("lora_alpha") as? NSNumber)?.floatValue
            let patterns = (value("alpha_pattern") as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.floatValue }
            let rootRank = (value("use_rslora") as? Bool) == true
            guard alpha != nil || !patterns.isEmpty || rootRank else { continue }
            var updated = byName
            for (name, var m) in byName where m.alpha == nil {
                // PEFT matches pattern keys as the whole module path or its tail after a ".".
                let pattern = patterns.filter { name == $0.key || name.hasSuffix("." + $0.key) }.max { $0.key.count < $1.key.count }
                m.alpha = pattern?.value ?? alpha ?? m.down.map { Float($0.shape[0]) }
                m.rootRank = rootRank
                updated[name] = m
            }
            modules[component] = updated
        }
    }

    static func list(_ keys: [String]) -> String {
        keys.prefix(20).joined(separator: ", ") + (keys.count > 20 ? " and \(keys.count - 20) more" : "")
    }

    /// Whether the file adapts the UNet / the text encoder.
    public var adaptsUNet: Bool { modules["unet"] != nil }
    public var adaptsTextEncoder: Bool { modules["text_encoder"] != nil }

    /// A copy of `unet` that runs with this LoRA at `weight` (the multiplier) on top of any LoRAs already bound to it.
    /// Every UNet module in the file must match a Linear or Conv2d of the UNet with fitting shapes; otherwise this
    /// throws, listing the modules that match nothing (none is silently dropped). A file without UNet modules returns
    /// the UNet unchanged.
    public func applied(to unet: UNet2DConditionModel, weight: Float) throws(ModelError) -> UNet2DConditionModel {
        guard let ms = modules["unet"] else { return unet }
        var copy = unet
        copy.lora = try Self.bind(ms, layers: LayerTable(unet), onto: unet.lora, weight: weight, component: "UNet", path: path)
        return copy
    }

    /// A copy of `textEncoder` that runs with this LoRA at `weight`, as `applied(to: UNet2DConditionModel, ...)`.
    public func applied(to textEncoder: CLIPTextModel, weight: Float) throws(ModelError) -> CLIPTextModel {
        guard let ms = modules["text_encoder"] else { return textEncoder }
        var copy = textEncoder
        copy.lora = try Self.bind(ms, layers: LayerTable(textEncoder), onto: textEncoder.lora, weight: weight,
                                  component: "text encoder", path: path)
        return copy
    }

    static func bind(_ modules: [String: Module], layers: LayerTable, onto existing: LoRABinding?, weight: Float,
                     component: String, path: String) throws(ModelError) -> LoRABinding {
        var terms = existing?.terms ?? [:]
        var unmatched: [String] = []
        for (key, m) in modules.sorted(by: { $0.key < $1.key }) {
            guard let layer = layers.find(key) else { unmatched.append(m.fileKey); continue }
            terms[layer.name, default: []].append(try LowRankTerm(m, layer: layer, multiplier: weight, path: path))
        }
        guard unmatched.isEmpty else {
            throw .configuration("\(path): \(unmatched.count) LoRA modules match no layer of the \(component): \(list(unmatched))")
        }
        return LoRABinding(terms: terms, merged: existing?.merged ?? [:])
    }
}

extension LoRABinding {
    /// Bytes merging would hold: the stored size of every layer that adds terms (the merged copies keep its dtype).
    func mergeBytes(layers: LayerTable) -> Int {
        terms.keys.reduce(0) { total, name in total + (layers.find(name)?.weight.storedBytes ?? 0) }
    }
}

extension UNet2DConditionModel {
    /// Bytes `mergingLoRAs()` would add (0 without unfused LoRAs).
    public var loraMergeBytes: Int { lora?.mergeBytes(layers: LayerTable(self)) ?? 0 }

    /// A copy whose bound LoRAs are merged into copies of the weights they adapt (`LoRABinding.merging`): passes at
    /// the base model's cost, for the copies' memory (`lora?.mergedBytes`). Without LoRAs, the UNet as it is.
    public func mergingLoRAs() throws(ModelError) -> UNet2DConditionModel {
        guard let lora else { return self }
        var copy = self
        copy.lora = try lora.merging(layers: LayerTable(self))
        return copy
    }
}

extension CLIPTextModel {
    /// Bytes `mergingLoRAs()` would add (0 without unfused LoRAs).
    public var loraMergeBytes: Int { lora?.mergeBytes(layers: LayerTable(self)) ?? 0 }

    /// A copy whose bound LoRAs are merged, as `UNet2DConditionModel.mergingLoRAs()`.
    public func mergingLoRAs() throws(ModelError) -> CLIPTextModel {
        guard let lora else { return self }
        var copy = self
        copy.lora = try lora.merging(layers: LayerTable(self))
        return copy
    }
}

/// A LoRA's layer, found in a model.
struct LayerTable {
    struct Layer {
        var name: String
        var weight: Weight
        /// [out, in] for a Linear, [O, I, K, K] for a Conv2d.
        var shape: [Int]
        var isConvolution: Bool
        var stride: Int
        var padding: Int
    }
    private var byDotted: [String: Layer] = [:]
    private var byUnderscored: [String: Layer] = [:]

    init(_ model: Any) {
        var layers: [Layer] = []
        Self.collect(model, into: &layers)
        for layer in layers {
            let dotted = Self.canonical(layer.name)
            byDotted[dotted] = layer
            byUnderscored[dotted.replacingOccurrences(of: ".", with: "_")] = layer
        }
    }

    /// The text encoder's paths may or may not start with `text_model.` (checkpoints and transformers versions
    /// differ; published LoRAs write `lora_te_text_model_encoder_...` / `text_encoder.text_model.encoder...`): compared
    /// without it.
    static func canonical(_ key: String) -> String {
        for p in ["text_model.", "text_model_"] where key.hasPrefix(p) { return String(key.dropFirst(p.count)) }
        return key
    }

    /// The layer a module key names: a dotted diffusers path (PEFT) or the same with every "." as "_" (kohya).
    func find(_ key: String) -> Layer? {
        let k = Self.canonical(key)
        return byDotted[k] ?? byUnderscored[k]
    }

    /// Every Linear and Conv2d reachable through stored properties (Mirror; tensors and weights are not entered).
    private static func collect(_ value: Any, into layers: inout [Layer]) {
        if let linear = value as? Linear {
            layers.append(Layer(name: linear.name, weight: linear.weight, shape: linear.weight.shape, isConvolution: false, stride: 1, padding: 0))
            return
        }
        if let conv = value as? Conv2d {
            layers.append(Layer(name: conv.name, weight: conv.weight, shape: conv.weight.shape, isConvolution: true, stride: conv.stride, padding: conv.padding))
            return
        }
        if value is Tensor || value is Weight || value is [Float] || value is String || value is WeightStore { return }
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .class { return }
        for child in mirror.children { collect(child.value, into: &layers) }
    }
}

/// One adapter's term on one layer, ready to run: `down` (and Tucker `mid`) as stored, `up` scaled by m * alpha / rank.
struct LowRankTerm: Sendable {
    let down: Weight
    let mid: Weight?
    let up: Weight
    let isConvolution: Bool
    /// The down (or mid) convolution's stride and padding: the base layer's.
    let stride: Int, padding: Int

    init(_ m: LoRA.Module, layer: LayerTable.Layer, multiplier: Float, path: String) throws(ModelError) {
        let down = m.down!, up = m.up!
        let rank = down.shape[0]
        let scale = multiplier * (m.alpha.map { $0 / (m.rootRank ? Float(rank).squareRoot() : Float(rank)) } ?? 1)
        let out = layer.shape[0], inputs = layer.shape[1]
        let bad = ModelError.configuration("\(path): \(m.fileKey): down \(down.shape)\(m.mid.map { ", mid \($0.shape)" } ?? ""), up \(up.shape) do not fit \(layer.name) \(layer.shape)")
        guard up.shape[0] == out else { throw bad }
        var scaledUp = up.tensor()
        for i in scaledUp.data.indices { scaledUp.data[i] *= scale }
        isConvolution = layer.isConvolution
        stride = layer.stride
        padding = layer.padding
        mid = m.mid
        if layer.isConvolution {
            let k = layer.shape[2]
            var d = down
            if d.rank == 2 { d = d.reshaped([rank, d.shape[1], 1, 1]) }
            guard d.shape[1] == inputs else { throw bad }
            if let mid = m.mid {
                guard mid.shape[2] == k, mid.shape[3] == k else { throw bad }
            } else {
                guard d.shape[2] == k, d.shape[3] == k else { throw bad }
            }
            self.down = d
            self.up = Weight(scaledUp.reshaped([out, rank, 1, 1]))
        } else {
            guard m.mid == nil, down.count == rank * inputs else { throw bad }
            self.down = down.reshaped([rank, inputs])
            self.up = Weight(scaledUp.reshaped([out, rank]))
        }
    }

    /// The term as a weight difference, up @ down (Tucker: up @ (mid applied to down)), flattened in the layer's
    /// weight layout ([out, in] or [O, I, K, K]), to add to the layer's weight.
    func weightDelta() -> [Float] {
        let upMatrix = up.tensor().data, out = up.shape[0], rank = up.shape[1]
        guard let mid else {
            let columns = down.count / rank
            return BLAS.multiply(upMatrix, down.tensor().data, m: out, n: columns, k: rank)
        }
        // T[a, i, kh, kw] = sum_b mid[a, b, kh, kw] down[b, i]: for each a, down^T [I, r] @ mid_a [r, K*K].
        let d = down.tensor().data, m = mid.tensor().data
        let inner = down.shape[0], inputs = down.shape[1], window = mid.shape[2] * mid.shape[3]
        var downT = [Float](repeating: 0, count: inputs * inner)
        for b in 0..<inner { for i in 0..<inputs { downT[i * inner + b] = d[b * inputs + i] } }
        var t = [Float]()
        t.reserveCapacity(rank * inputs * window)
        for a in 0..<rank {
            t += BLAS.multiply(downT, Array(m[(a * inner * window)..<((a + 1) * inner * window)]), m: inputs, n: window, k: inner)
        }
        return BLAS.multiply(upMatrix, t, m: out, n: inputs * window, k: rank)
    }

    /// The term for input `x`, to add to the layer's output.
    func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        if !isConvolution { return try x.linear(weight: down, bias: nil).linear(weight: up, bias: nil) }
        var h: Tensor
        if let mid {
            h = try x.conv2d(weight: down, bias: nil)
            h = try h.conv2d(weight: mid, bias: nil, stride: stride, padding: padding)
        } else {
            h = try x.conv2d(weight: down, bias: nil, stride: stride, padding: padding)
        }
        return try h.conv2d(weight: up, bias: nil)
    }
}

/// The LoRA terms bound to one model copy, by layer name; stacked LoRAs add their terms to the same layers. Merged
/// layers run a weight of their own instead (`merging`).
public final class LoRABinding: Sendable {
    let terms: [String: [LowRankTerm]]
    /// Layers whose weight is replaced by a merged copy (their own plus every term), by name.
    let merged: [String: Weight]

    init(terms: [String: [LowRankTerm]], merged: [String: Weight] = [:]) {
        self.terms = terms
        self.merged = merged
    }

    /// Adapted layers (for logs).
    public var layerCount: Int { Set(terms.keys).union(merged.keys).count }
    /// Layers that add unfused terms each pass (0 when everything is merged).
    public var unfusedLayerCount: Int { terms.count }
    /// Bytes the merged weights hold (0 unmerged).
    public var mergedBytes: Int { merged.values.reduce(0) { $0 + $1.storedBytes } }

    /// This binding with every term folded into a copy of its layer's weight (W + sum of up @ down), stored at that
    /// weight's precision; the layers then run their copies and add no terms. Throws when a term's layer is not in
    /// `layers` (the model it was bound to).
    func merging(layers: LayerTable) throws(ModelError) -> LoRABinding {
        var weights = merged
        for (name, layerTerms) in terms {
            guard let layer = layers.find(name) else { throw .configuration("LoRA merge: no layer \(name)") }
            let base = weights[name] ?? layer.weight
            var w = base.tensor()
            for term in layerTerms {
                let delta = term.weightDelta()
                precondition(delta.count == w.count, "LoRA delta of \(name) does not fit its weight")
                for i in w.data.indices { w.data[i] += delta[i] }
            }
            weights[name] = Weight(w, storedAs: layer.weight.dtype)
        }
        return LoRABinding(terms: [:], merged: weights)
    }

    /// The weight the layer `name` runs with under the current binding: its merged copy, or nil for its own.
    static func weight(for name: String) -> Weight? { current?.merged[name] }

    /// The binding of the pass now running (set by the UNet and the text encoder around their pass).
    @TaskLocal static var current: LoRABinding?

    /// Runs `body` with `binding` as the current one (nothing changes when it already is, or when it is nil).
    static func with<R>(_ binding: LoRABinding?, _ body: () throws(ModelError) -> R) throws(ModelError) -> R {
        guard let binding, current !== binding else { return try body() }
        do {
            return try $current.withValue(binding) { try body() }
        } catch let error as ModelError {
            throw error
        } catch {
            throw .configuration("\(error)")
        }
    }

    /// Whether the current binding adds terms to the layer `name`'s output.
    static func addsTerms(to name: String) -> Bool { current?.terms[name] != nil }

    /// `y` (the output of the layer `name` for input `x`) plus the current binding's terms for that layer.
    static func adding(to y: Tensor, input x: Tensor, layer name: String) throws(ModelError) -> Tensor {
        guard let terms = current?.terms[name] else { return y }
        var out = y
        for term in terms { out = out + (try compute { () throws(TensorError) in try term(x) }) }
        return out
    }
}
