// paintsd tool forward: runs one model component on tensors from a safetensors file and writes its outputs to another,
// to check a converted checkpoint or compare the engine with diffusers.
import ArgumentParser
import Foundation
import PaintsDiffusion
import PaintsTensor

struct Tool: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Model tools.", subcommands: [Forward.self])
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one component on tensors read from a safetensors file; write its outputs to another.",
        discussion: """
            Inputs and outputs by component (tensor names as diffusers/transformers call them):
              unet          sample [N,C,H,W], timesteps [N] or [1], encoder_hidden_states [N,S,D] -> output;
                            with --ip-adapter also image_embeds ([N,E], or [N,S,W] for Plus)
                            a UNet with a blueprint encoder (SDRO) also controlnet_cond [N,3,8H,8W] in 0..1
              vae-encode    image [N,3,H,W] in -1..1 -> mean, logvar (unscaled)
              vae-decode    latents [N,4,h,w] (unscaled) -> decoded
              taesd-encode  image [N,3,H,W] in -1..1 -> latents (as the UNet sees them: TAESD's scaling_factor is 1)
              taesd-decode  latents [N,4,h,w] (as the UNet sees them, not unscaled) -> decoded (about -1..1)
              text-encoder  input_ids [N,77] (int64) -> last_hidden_state (after --clip-skip layers are skipped)
              controlnet    sample [N,C,h,w], timesteps [N] or [1], encoder_hidden_states [N,S,D],
                            controlnet_cond [N,3,8h,8w] in 0..1, optional conditioning_scale [1] (default 1)
                            -> down_0 ... down_{k-1} (k = 12 for SD1.5), mid
              clip-vision   pixel_values [N,3,S,S] (CLIPImageProcessor's output) -> last_hidden_state,
                            penultimate_hidden_state, and image_embeds when the model has a visual_projection
            --model is the component's folder (config.json + weights), or a pipeline folder holding unet/, vae/,
            text_encoder/, controlnet/, image_encoder/, taesd/; for controlnet also an original-layout single file
            (control_v11p_sd15_*.safetensors, keys with or without control_model.).
            """)

    enum Component: String, ExpressibleByArgument, CaseIterable {
        case unet, vaeEncode = "vae-encode", vaeDecode = "vae-decode", textEncoder = "text-encoder", controlnet
        case clipVision = "clip-vision"
        case taesdEncode = "taesd-encode", taesdDecode = "taesd-decode"
    }

    @Option(help: "Component folder or pipeline folder.") var model: String
    @Option(help: "unet, vae-encode, vae-decode, text-encoder, controlnet, clip-vision, taesd-encode or taesd-decode.") var component: Component
    @Option(help: "safetensors file with the inputs.") var inputs: String
    @Option(help: "safetensors file to write.") var output: String
    @Option(help: "Text encoder: layers to skip from the end (0 = last layer).") var clipSkip = 0
    @Option(help: "UNet: an IP-Adapter .safetensors; the inputs then hold image_embeds ([N,E], or [N,S,W] hidden states for Plus).")
    var ipAdapter: String?
    @Option(help: "UNet: the IP-Adapter's scale.") var ipAdapterScale: Float = 1
    @Option(help: "UNet or text encoder: a LoRA .safetensors (kohya or diffusers/PEFT layout) and its weight, FILE[:WEIGHT] (default 1); repeatable, they stack.")
    var lora: [String] = []
    @Flag(help: "With --lora: merge the LoRAs into copies of the weights they change instead of adding their terms each pass.")
    var loraMerge = false

    /// The --lora files with their weights: FILE or FILE:WEIGHT (a path may itself hold ':', so only a number after the
    /// last one is a weight).
    func loras() throws -> [(LoRA, Float)] {
        try lora.map { spec in
            if let colon = spec.lastIndex(of: ":"), let weight = Float(spec[spec.index(after: colon)...]) {
                return (try LoRA(path: String(spec[..<colon])), weight)
            }
            return (try LoRA(path: spec), 1)
        }
    }

    func folder(_ sub: String) -> String {
        FileManager.default.fileExists(atPath: model + "/" + sub + "/config.json") ? model + "/" + sub : model
    }

    func run() throws {
        guard lora.isEmpty || component == .unet || component == .textEncoder else {
            throw ModelError.configuration("--lora applies to --component unet or text-encoder only")
        }
        let file = try SafeTensorsFile(path: inputs)
        var out: [SafeTensorsWriter.Tensor] = []
        func add(_ name: String, _ t: Tensor) { out.append(.init(name, shape: t.shape, values: t.data)) }
        switch component {
        case .unet:
            var unet = try UNet2DConditionModel(folder: folder("unet"))
            for (adapter, weight) in try loras() { unet = try adapter.applied(to: unet, weight: weight) }
            if loraMerge { unet = try unet.mergingLoRAs() }
            if let ipAdapter {
                let adapter = try IPAdapter(path: ipAdapter)
                unet = try adapter.applied(to: unet, tokens: try adapter.imageTokens(file.tensor("image_embeds")), scale: ipAdapterScale)
            }
            // SDRO's UNet carries a blueprint encoder and takes its blueprint as controlnet_cond.
            let blueprint = unet.takesBlueprint ? try file.tensor("controlnet_cond") : nil
            add("output", try unet(file.tensor("sample"), timesteps: file.floats("timesteps"), context: file.tensor("encoder_hidden_states"),
                                   conditioning: UNetConditioning(blueprint: blueprint)))
        case .controlnet:
            let controlnet = model.hasSuffix(".safetensors") ? try ControlNetCheckpoint.load(path: model)
                : try ControlNetModel(folder: folder("controlnet"))
            var scale: Float = 1
            if file.entries["conditioning_scale"] != nil {
                let values = try file.floats("conditioning_scale")
                guard values.count == 1 else {
                    throw ModelError.configuration("conditioning_scale must hold one number, not \(values.count)")
                }
                scale = values[0]
            }
            let (down, mid) = try controlnet(file.tensor("sample"), timesteps: file.floats("timesteps"),
                                             context: file.tensor("encoder_hidden_states"),
                                             conditioning: file.tensor("controlnet_cond"), conditioningScale: scale)
            for (i, residual) in down.enumerated() { add("down_\(i)", residual) }
            add("mid", mid)
        case .vaeEncode:
            let (mean, logVariance) = try AutoencoderKL(folder: folder("vae")).encode(file.tensor("image"))
            add("mean", mean)
            add("logvar", logVariance)
        case .vaeDecode:
            add("decoded", try AutoencoderKL(folder: folder("vae")).decode(file.tensor("latents")))
        case .taesdEncode:
            add("latents", try AutoencoderTiny(folder: folder("taesd")).encode(file.tensor("image")))
        case .taesdDecode:
            add("decoded", try AutoencoderTiny(folder: folder("taesd")).decode(file.tensor("latents")))
        case .textEncoder:
            let ids = try file.integers("input_ids"), shape = try file.entry("input_ids").shape
            // [N, L] or [L], with N and L at least 1 (a zero width would make a zero stride).
            guard (1...2).contains(shape.count), shape.allSatisfy({ $0 >= 1 }), let width = shape.last else {
                throw ModelError.configuration("input_ids must have shape [N, L] or [L] with N, L >= 1, not \(shape)")
            }
            let rows = stride(from: 0, to: ids.count, by: width).map { Array(ids[$0..<($0 + width)]) }
            var textModel = try CLIPTextModel(folder: folder("text_encoder"))
            for (adapter, weight) in try loras() { textModel = try adapter.applied(to: textModel, weight: weight) }
            if loraMerge { textModel = try textModel.mergingLoRAs() }
            add("last_hidden_state", try textModel.encode(rows, clipSkip: clipSkip))
        case .clipVision:
            let encoded = try CLIPVisionModel(folder: folder("image_encoder"))(file.tensor("pixel_values"))
            add("last_hidden_state", encoded.lastHiddenState)
            add("penultimate_hidden_state", encoded.penultimateHiddenState)
            if let embeds = encoded.imageEmbeds { add("image_embeds", embeds) }
        }
        try SafeTensorsWriter.write(out, to: output)
        for t in out { print("\(t.name) \(t.shape)") }
    }
}
