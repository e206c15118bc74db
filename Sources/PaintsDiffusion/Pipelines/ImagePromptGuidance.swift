// PaintsDiffusion/Pipelines/ImagePromptGuidance: a reference picture steering a sampling run through an IP-Adapter:
// its image tokens beside the text in every cross-attention layer, the unconditional half given "no image".
// Matches: diffusers' pipelines with precomputed `ip_adapter_image_embeds` ([negative; positive], the negative first
// as the text's).
import PaintsTensor

public struct ImagePromptGuidance: Sendable {
    public var adapter: IPAdapter
    /// The reference's embedding [1, E] (or hidden states [1, S, W] for a resampler adapter).
    public var embeds: Tensor
    /// What the unconditional half sees: IP-Adapter's projection of a zero embedding, or for Plus the image encoder's
    /// hidden states of a zero image.
    public var negativeEmbeds: Tensor
    /// Weight of the image tokens' attention beside the text's (1 for image-only prompts, 0.5 mixed with text).
    public var scale: Float

    public init(adapter: IPAdapter, embeds: Tensor, negativeEmbeds: Tensor, scale: Float = 1) {
        self.adapter = adapter
        self.embeds = embeds
        self.negativeEmbeds = negativeEmbeds
        self.scale = scale
    }

    /// The UNet of a guidance batch [uncond; cond] with the image tokens bound to its cross-attention layers (beside
    /// any bound before: several image prompts add up).
    /// Without guidance (`guided` false) the batch is the cond row alone and takes the positive tokens only.
    func unet(_ unet: UNet2DConditionModel, guided: Bool = true) throws(ModelError) -> UNet2DConditionModel {
        guard embeds.shape.first == 1, negativeEmbeds.shape == embeds.shape else {
            throw .tensor(.shapeMismatch(operation: "image prompt embeddings", shapes: [embeds.shape, negativeEmbeds.shape]))
        }
        let positive = try adapter.imageTokens(embeds)
        guard guided else { return try adapter.applied(to: unet, tokens: positive, scale: scale) }
        let negative = try adapter.imageTokens(negativeEmbeds)
        let tokens = Tensor(shape: [2] + Array(positive.shape.dropFirst()), data: negative.data + positive.data)
        return try adapter.applied(to: unet, tokens: tokens, scale: scale)
    }
}
