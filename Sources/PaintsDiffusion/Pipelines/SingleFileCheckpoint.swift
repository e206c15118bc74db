// PaintsDiffusion/Pipelines/SingleFileCheckpoint: a whole Stable Diffusion 1.x/2.x model from one original-layout
// `.safetensors` file (A1111 / civitai style): component configurations read from the tensors' shapes, with the few
// facts shapes cannot tell taken from the model family, as diffusers' single-file loader does.
//
// The family is told by the text context width: 768 is SD1.x (CLIP ViT-L, 8 heads per attention, epsilon prediction),
// 1024 is SD2.x (OpenCLIP ViT-H penultimate layer, 64-dim heads, v-prediction as the 768-v models use; an SD2 "base"
// epsilon model needs `predictionType` set). Group norms have 32 groups. The file carries no tokenizer: the CLIP BPE
// vocabulary comes from a tokenizer folder.
import Foundation
import PaintsTensor

public struct SingleFileCheckpoint: Sendable {
    public let path: String
    public var unet: UNetConfiguration
    public var vae: VAEConfiguration
    public var textEncoder: CLIPTextConfiguration
    public var scheduler: SchedulerConfiguration
    /// "sd1" or "sd2".
    public let family: String
    let file: SafeTensorsFile

    /// Whether `path` is a `.safetensors` file in the original LDM layout (its header read once per file version).
    public static func isCheckpoint(_ path: String) -> Bool {
        path.hasSuffix(".safetensors") && HeaderVerdicts.verdict("ldm-checkpoint", path: path, LDMCheckpoint.isLDM)
    }

    /// Reads the header and infers every configuration.
    public init(path: String) throws(ModelError) {
        self.path = path
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path) } catch { throw .weights(error) }
        self.file = file
        guard LDMCheckpoint.isLDM(file) else { throw .configuration("\(path): not an original-layout Stable Diffusion checkpoint") }
        let u = LDMCheckpoint.unetPrefix
        func shape(_ key: String) throws(ModelError) -> [Int] {
            guard let e = file.entries[key] else { throw .configuration("\(path): missing tensor \(key)") }
            return e.shape
        }
        // The file may hold anything under these keys: every dimension read is checked to exist.
        func dimension(_ key: String, _ index: Int) throws(ModelError) -> Int {
            let s = try shape(key)
            guard index < s.count, s[index] >= 1 else {
                throw .configuration("\(path): tensor \(key) has shape \(s), which has no dimension \(index) to read a size from")
            }
            return s[index]
        }
        // UNet: levels and layers as the key mapping reads them; the rest from the shapes and the family.
        let keys = file.names.filter { $0.hasPrefix(u) }.map { String($0.dropFirst(u.count)) }
        let (levels, layers) = try LDMCheckpoint.unetLayout(keys, path: path)
        let (unetJSON, sd2) = try LDMCheckpoint.unetConfiguration(file, prefix: u, keys: keys, levels: levels, layers: layers)
        family = sd2 ? "sd2" : "sd1"
        unet = try UNetConfiguration(json: unetJSON, path: path)
        // VAE: channels per encoder level, resnets per level, latent channels from the decoder's input.
        let v = LDMCheckpoint.vaePrefix
        let vaeLevels = Set(file.names.filter { $0.hasPrefix(v + "encoder.down.") }.compactMap { LDMCheckpoint.part($0, 3) }).count
        var vaeChannels: [Int] = []
        for level in 0..<vaeLevels { vaeChannels.append(try dimension(v + "encoder.down.\(level).block.0.conv1.weight", 0)) }
        let vaeLayers = Set(file.names.filter { $0.hasPrefix(v + "encoder.down.0.block.") }.compactMap { LDMCheckpoint.part($0, 5) }).count
        vae = try VAEConfiguration(json: [
            "block_out_channels": vaeChannels, "layers_per_block": vaeLayers,
            "latent_channels": try dimension(v + "decoder.conv_in.weight", 1),
            "use_quant_conv": file.entries[v + "quant_conv.weight"] != nil,
            "use_post_quant_conv": file.entries[v + "post_quant_conv.weight"] != nil,
        ], path: path)
        // Text encoder.
        if LDMCheckpoint.hasOpenCLIPTextEncoder(file) {
            textEncoder = try LDMCheckpoint.openCLIPTextEncoder(file).1
        } else {
            let c = LDMCheckpoint.clipPrefix
            let hidden = try dimension(c + "text_model.embeddings.token_embedding.weight", 1)
            let clipLayers = Set(file.names.filter { $0.hasPrefix(c + "text_model.encoder.layers.") }.compactMap { LDMCheckpoint.part($0, 5) }).count
            textEncoder = try CLIPTextConfiguration(json: [
                "hidden_size": hidden, "num_hidden_layers": clipLayers, "num_attention_heads": max(1, hidden / 64),
                "max_position_embeddings": try dimension(c + "text_model.embeddings.position_embedding.weight", 0),
                "hidden_act": "quick_gelu",
            ], path: path)
        }
        // The schedule every SD1.x/2.x model was trained with (the published scheduler_config.json).
        do {
            scheduler = try SchedulerConfiguration(json: [
                "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                "steps_offset": 1, "set_alpha_to_one": false, "timestep_spacing": "leading",
                "prediction_type": sd2 ? "v_prediction" : "epsilon",
            ])
        } catch { throw .weights(error) }
    }

    /// The pipeline, with the tokenizer read from `tokenizerFolder` (SD2 pads with "!", as its tokenizer does).
    public func pipeline(tokenizerFolder: String, clipSkip: Int = 0) throws(ModelError) -> StableDiffusionPipeline {
        let text: CLIPTextModel
        if LDMCheckpoint.hasOpenCLIPTextEncoder(file) {
            text = try CLIPTextModel(configuration: textEncoder, weights: LDMCheckpoint.openCLIPTextEncoder(file).0)
        } else {
            text = try CLIPTextModel(configuration: textEncoder, weights: LDMCheckpoint.textEncoder(file))
        }
        let tokenizer = try CLIPTokenizer(folder: tokenizerFolder, padToken: family == "sd2" ? "!" : nil)
        return try StableDiffusionModel.assemble(unet: try UNet2DConditionModel(configuration: unet, weights: LDMCheckpoint.unet(file)),
                                                 vae: try AutoencoderKL(configuration: vae, weights: LDMCheckpoint.vae(file)),
                                                 prompts: PromptEncoder(tokenizer: tokenizer, textModel: text, clipSkip: clipSkip),
                                                 scheduler: scheduler)
    }

    /// Bytes the weights take once loaded (stored dtype, read in place).
    public var residentBytes: Int { file.storedBytes }
}
