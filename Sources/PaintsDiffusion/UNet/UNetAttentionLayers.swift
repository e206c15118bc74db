// PaintsDiffusion/UNet/UNetAttentionLayers: the UNet's attention layers in diffusers' `attn_processors` order, for the
// pieces that replace how they attend (IP-Adapter's image tokens; reference attention).
import PaintsTensor

extension UNet2DConditionModel {
    /// Every transformer block, in diffusers' `attn_processors` order: down blocks, then up blocks, then the mid block
    /// (the order UNet2DConditionModel registers its children in); within a block, each transformer's blocks in turn.
    /// The k-th block's `attn1` is processor 2k and its `attn2` processor 2k+1: the index IP-Adapter files key
    /// their layers by (`ip_adapter.{2k+1}.to_k_ip`).
    public var transformerBlockCount: Int {
        var count = 0
        for b in downBlocks { for a in b.attentions { count += a.blocks.count } }
        for b in upBlocks { for a in b.attentions { count += a.blocks.count } }
        return count + midBlock.attention.blocks.count
    }

    /// Calls `body` with each transformer block's index (as `transformerBlockCount` counts them) and the block, to
    /// change in place.
    public mutating func updateTransformerBlocks(_ body: (Int, inout BasicTransformerBlock) throws(ModelError) -> Void) throws(ModelError) {
        var k = 0
        func update(_ t: inout Transformer2DModel) throws(ModelError) {
            for j in t.blocks.indices {
                try body(k, &t.blocks[j])
                k += 1
            }
        }
        for i in downBlocks.indices { for a in downBlocks[i].attentions.indices { try update(&downBlocks[i].attentions[a]) } }
        for i in upBlocks.indices { for a in upBlocks[i].attentions.indices { try update(&upBlocks[i].attentions[a]) } }
        try update(&midBlock.attention)
    }
}
