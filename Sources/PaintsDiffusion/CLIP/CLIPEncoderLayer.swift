// PaintsDiffusion/CLIP/CLIPEncoderLayer: one layer of CLIP's transformer, shared by the text and the vision encoders.
// Matches: transformers CLIPEncoderLayer (pre-LayerNorm self-attention, then an MLP fc1 -> activation -> fc2, each
// added back to its input).
import Foundation
import PaintsTensor

/// CLIP's MLP activation, as config.json's `hidden_act` names it.
public enum CLIPActivation: String, Sendable {
    /// x * sigmoid(1.702 x): OpenAI CLIP (SD1.x text encoder, ViT-L/14).
    case quickGELU = "quick_gelu"
    /// The exact (erf) GELU: OpenCLIP (SD2.x text encoder, ViT-H/14).
    case gelu
}

struct CLIPEncoderLayer: Sendable {
    let norm1: LayerNorm, norm2: LayerNorm
    let q: Linear, k: Linear, v: Linear, out: Linear
    let fc1: Linear, fc2: Linear
    let heads: Int
    let activation: CLIPActivation

    /// Reads `layer_norm1`, `self_attn.{q,k,v,out}_proj`, `layer_norm2` and `mlp.fc1/fc2` under `w`
    /// (`encoder.layers.N`), checking every shape against the hidden width and the head count.
    init(_ w: WeightStore, hiddenSize d: Int, heads: Int, epsilon: Float, activation: CLIPActivation) throws(ModelError) {
        norm1 = try LayerNorm(w.scoped("layer_norm1"), epsilon: epsilon)
        norm2 = try LayerNorm(w.scoped("layer_norm2"), epsilon: epsilon)
        q = try Linear(w.scoped("self_attn.q_proj"))
        k = try Linear(w.scoped("self_attn.k_proj"))
        v = try Linear(w.scoped("self_attn.v_proj"))
        out = try Linear(w.scoped("self_attn.out_proj"))
        fc1 = try Linear(w.scoped("mlp.fc1"))
        fc2 = try Linear(w.scoped("mlp.fc2"))
        self.heads = heads
        self.activation = activation
        // Both residual sums add the hidden width; the heads split the projections' width.
        let width = q.outFeatures
        guard heads >= 1, norm1.channels == d, norm2.channels == d,
              [q.inFeatures, k.inFeatures, v.inFeatures, out.outFeatures, fc1.inFeatures, fc2.outFeatures].allSatisfy({ $0 == d }),
              k.outFeatures == width, v.outFeatures == width, out.inFeatures == width, width % heads == 0,
              fc2.inFeatures == fc1.outFeatures
        else { throw .configuration("\(w.prefix): the layer's shapes do not fit hidden size \(d) and \(heads) heads") }
    }

    /// The layer on hidden states [B, L, hidden]; `causal` masks later tokens (the text encoder).
    func callAsFunction(_ h: Tensor, causal: Bool) throws(ModelError) -> Tensor {
        try cancellationPoint()
        let x = try norm1(h)
        let projected = try Linear.outputs(of: [q, k, v], for: x)   // with a bound LoRA's terms; x packed once on panels
        let (query, key, value) = (projected[0], projected[1], projected[2])
        let attended = try compute { () throws(TensorError) in
            try Tensor.attention(query: query, key: key, value: value, heads: heads, causal: causal)
        }
        // The residual adds and quick GELU run in the products' epilogues where the kernel has one.
        let h = try out(attended, adding: h)
        let normed = try norm2(h)
        let hidden = activation == .gelu ? try fc1(normed).gelu() : try fc1(normed, gate: 1.702)
        return try fc2(hidden, adding: h)
    }
}
