// LoRA against diffusers on the tiny SD1 UNet and CLIP text encoder (Tests/Fixtures/lora, from its generate.py): a
// kohya file (rank 4, alpha 2, LoCon 3x3 convs in the resnets) at 0.8, a diffusers/PEFT file (rank 3, no alpha) at
// 1.3, both stacked, and the PEFT file with diffusers' lora_adapter_metadata (lora_alpha, alpha_pattern) at 0.6;
// diffusers' outputs come from load_lora_into_unet / _text_encoder, unfused.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct LoRAParityTests {
    let base = Repository.path("Tests/Fixtures/lora")
    let diffusion = Repository.path("Tests/Fixtures/diffusion")

    struct Inputs {
        let sample: Tensor, timesteps: [Float], context: Tensor, ids: [[Int]]
        let io: SafeTensorsFile
    }

    func inputs() throws -> Inputs {
        let io = try SafeTensorsFile(path: base + "/io.safetensors")
        let flat = try io.integers("input_ids")
        return Inputs(sample: try io.tensor("sample"), timesteps: try io.floats("timesteps"), context: try io.tensor("encoder_hidden_states"),
                      ids: stride(from: 0, to: flat.count, by: 77).map { Array(flat[$0..<($0 + 77)]) }, io: io)
    }

    var kohya: String { base + "/kohya/lora_tiny.safetensors" }
    var peft: String { base + "/peft/pytorch_lora_weights.safetensors" }

    @Test(arguments: ["kohya", "peft", "both", "peft_alpha"])
    func unetAndTextEncoderMatchDiffusers(_ run: String) throws {
        let x = try inputs()
        let m = try x.io.floats("multiplier")[0], pm = try x.io.floats("peft_multiplier")[0], am = try x.io.floats("alpha_multiplier")[0]
        let files: [(String, Float)] = switch run {
        case "kohya": [(kohya, m)]
        case "peft": [(peft, pm)]
        case "both": [(kohya, m), (peft, pm)]
        default: [(base + "/peft-alpha/pytorch_lora_weights.safetensors", am)]   // scales from lora_adapter_metadata
        }
        var unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        var text = try CLIPTextModel(folder: diffusion + "/clip-sd1")
        for (path, weight) in files {
            let lora = try LoRA(path: path)
            #expect(lora.adaptsUNet && lora.adaptsTextEncoder)
            unet = try lora.applied(to: unet, weight: weight)
            text = try lora.applied(to: text, weight: weight)
        }
        let output = try unet(x.sample, timesteps: x.timesteps, context: x.context)
        let hidden = try text.encode(x.ids)
        let unetError = relativeError(output, try x.io.tensor("unet_\(run)"))
        let textError = relativeError(hidden, try x.io.tensor("te_\(run)"))
        print("lora \(run): UNet relative error \(unetError), text encoder \(textError)")
        #expect(unetError <= 1e-4 && textError <= 1e-4)
        // The comparison can fail: the base outputs are far from diffusers' outputs with the LoRA, and so is the LoRA at
        // another multiplier.
        #expect(relativeError(try x.io.tensor("unet_base"), try x.io.tensor("unet_\(run)")) > 1e-2)
        #expect(relativeError(try x.io.tensor("te_base"), try x.io.tensor("te_\(run)")) > 1e-2)
        let other = try LoRA(path: files[0].0).applied(to: try UNet2DConditionModel(folder: diffusion + "/unet-sd1"), weight: files[0].1 * 0.9)
        #expect(relativeError(try other(x.sample, timesteps: x.timesteps, context: x.context), try x.io.tensor("unet_\(run)")) > 1e-3)
        if run == "peft_alpha" {
            // The metadata's alphas matter: the same tensors without them (scale 1) are far off.
            let plain = try LoRA(path: peft).applied(to: try UNet2DConditionModel(folder: diffusion + "/unet-sd1"), weight: am)
            #expect(relativeError(try plain(x.sample, timesteps: x.timesteps, context: x.context), try x.io.tensor("unet_peft_alpha")) > 1e-2)
        }
    }

    /// LyCORIS LoCon with Tucker lora_mid on 3x3 convs (one with stride 2), against the merge restated in generate.py
    /// (diffusers cannot load lora_mid).
    @Test func tuckerLoConMatchesTheRestatedMerge() throws {
        let x = try inputs()
        let lora = try LoRA(path: base + "/locon-tucker/lora_tiny.safetensors")
        #expect(lora.adaptsUNet && !lora.adaptsTextEncoder)
        let unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        let m = try x.io.floats("tucker_multiplier")[0]
        let output = try lora.applied(to: unet, weight: m)(x.sample, timesteps: x.timesteps, context: x.context)
        let error = relativeError(output, try x.io.tensor("unet_tucker"))
        print("lora tucker: UNet relative error \(error)")
        #expect(error <= 1e-4)
        #expect(relativeError(try x.io.tensor("unet_base"), try x.io.tensor("unet_tucker")) > 1e-2)
        // A text encoder is returned as it was: the file has no text encoder modules.
        let text = try CLIPTextModel(folder: diffusion + "/clip-sd1")
        #expect(try lora.applied(to: text, weight: m).lora == nil)
    }

    /// The base model a LoRA was bound onto is untouched: it gives the original output exactly, before and after.
    @Test func theBaseModelStaysIntact() throws {
        let x = try inputs()
        let unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        let text = try CLIPTextModel(folder: diffusion + "/clip-sd1")
        let before = try unet(x.sample, timesteps: x.timesteps, context: x.context), textBefore = try text.encode(x.ids)
        let lora = try LoRA(path: kohya)
        let adapted = try lora.applied(to: unet, weight: 0.8), adaptedText = try lora.applied(to: text, weight: 0.8)
        let withLoRA = try adapted(x.sample, timesteps: x.timesteps, context: x.context)
        _ = try adaptedText.encode(x.ids)
        let after = try unet(x.sample, timesteps: x.timesteps, context: x.context), textAfter = try text.encode(x.ids)
        #expect(before.data == after.data && textBefore.data == textAfter.data)
        #expect(relativeError(after, try x.io.tensor("unet_base")) <= 1e-4)
        #expect(relativeError(textAfter, try x.io.tensor("te_base")) <= 1e-4)
        #expect(withLoRA.data != after.data)
        // A multiplier of 0 is the base model exactly (every term is multiplied by zero).
        let zero = try lora.applied(to: unet, weight: 0)(x.sample, timesteps: x.timesteps, context: x.context)
        #expect(relativeError(zero, before) <= 1e-6)
    }

    /// Merged (the terms folded into copies of the weights) gives diffusers' outputs as the unfused binding does, for
    /// each file layout, stacked files, Tucker LoCon, and a LoRA bound on top of a merged one; the merged copy adds no
    /// terms and leaves the base model exact.
    @Test(arguments: ["kohya", "peft", "both", "peft_alpha", "tucker", "stacked_on_merged"])
    func mergedWeightsMatchDiffusers(_ run: String) throws {
        let x = try inputs()
        let m = try x.io.floats("multiplier")[0], pm = try x.io.floats("peft_multiplier")[0]
        let model = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        let text = try CLIPTextModel(folder: diffusion + "/clip-sd1")
        let before = try model(x.sample, timesteps: x.timesteps, context: x.context)
        var unet = model, encoder = text
        let expected: String
        switch run {
        case "tucker":
            unet = try LoRA(path: base + "/locon-tucker/lora_tiny.safetensors").applied(to: unet, weight: try x.io.floats("tucker_multiplier")[0]).mergingLoRAs()
            expected = "tucker"
        case "stacked_on_merged":
            let k = try LoRA(path: kohya), p = try LoRA(path: peft)
            unet = try p.applied(to: try k.applied(to: unet, weight: m).mergingLoRAs(), weight: pm)
            encoder = try p.applied(to: try k.applied(to: encoder, weight: m).mergingLoRAs(), weight: pm)
            #expect(unet.lora!.mergedBytes > 0 && unet.lora!.unfusedLayerCount > 0, "kohya merged, PEFT unfused on top")
            expected = "both"
        default:
            let am = try x.io.floats("alpha_multiplier")[0]
            let files: [(String, Float)] = switch run {
            case "kohya": [(kohya, m)]
            case "peft": [(peft, pm)]
            case "both": [(kohya, m), (peft, pm)]
            default: [(base + "/peft-alpha/pytorch_lora_weights.safetensors", am)]
            }
            for (path, weight) in files {
                unet = try LoRA(path: path).applied(to: unet, weight: weight)
                encoder = try LoRA(path: path).applied(to: encoder, weight: weight)
            }
            unet = try unet.mergingLoRAs()
            encoder = try encoder.mergingLoRAs()
            #expect(unet.lora!.unfusedLayerCount == 0 && encoder.lora!.unfusedLayerCount == 0, "merged: no terms left to add")
            expected = run
        }
        let output = try unet(x.sample, timesteps: x.timesteps, context: x.context)
        let unetError = relativeError(output, try x.io.tensor("unet_\(expected)"))
        print("lora \(run) merged: UNet relative error \(unetError), \(unet.lora!.mergedBytes) bytes of merged weights over \(unet.lora!.layerCount) layers")
        #expect(unetError <= 1e-4)
        #expect(relativeError(try x.io.tensor("unet_base"), try x.io.tensor("unet_\(expected)")) > 1e-2)
        if run != "tucker" {
            let textError = relativeError(try encoder.encode(x.ids), try x.io.tensor("te_\(expected)"))
            #expect(textError <= 1e-4, "text encoder merged: \(textError)")
        }
        // The base model is untouched.
        #expect(try model(x.sample, timesteps: x.timesteps, context: x.context).data == before.data)
    }

    /// Bad files are refused with what is wrong named: LoHa / LoKr by name, keys of another form, modules matching no
    /// layer.
    @Test func refusesWhatItCannotApply() throws {
        let dir = try TemporaryDirectory.make(prefix: "lora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ tensors: [(String, [Int])]) throws -> String {
            let path = dir + "/" + name
            try SafeTensorsWriter.write(tensors.map { SafeTensorsWriter.Tensor($0.0, shape: $0.1, values: [Float](repeating: 0.1, count: $0.1.reduce(1, *))) },
                                        to: path)
            return path
        }
        let loha = try write("loha.safetensors", [("lora_unet_mid_block_attentions_0_proj_in.hada_w1_a", [4, 2])])
        #expect(throws: ModelError.self) { try LoRA(path: loha) }
        do { _ = try LoRA(path: loha) } catch { #expect("\(error)".contains("LoHa")) }
        let lokr = try write("lokr.safetensors", [("lora_unet_mid_block_attentions_0_proj_in.lokr_w1", [4, 2])])
        do { _ = try LoRA(path: lokr); Issue.record("LoKr accepted") } catch { #expect("\(error)".contains("LoKr")) }
        let odd = try write("odd.safetensors", [("unet.mid_block.attentions.0.proj_in.weird.weight", [4, 2])])
        do { _ = try LoRA(path: odd); Issue.record("unknown key accepted") } catch { #expect("\(error)".contains("weird")) }
        // A module for a layer the UNet does not have: named in the error, not dropped.
        let stray = try write("stray.safetensors", [
            ("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", [2, 64]),
            ("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight", [64, 2]),
            ("lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight", [2, 32]),
            ("lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight", [32, 2]),
        ])
        let unet = try UNet2DConditionModel(folder: diffusion + "/unet-sd1")
        do { _ = try LoRA(path: stray).applied(to: unet, weight: 1); Issue.record("stray module accepted") } catch {
            #expect("\(error)".contains("lora_unet_down_blocks_7_attentions_0_proj_in") && !"\(error)".contains("attn1_to_q"))
        }
        // Shapes that do not fit the layer.
        let wrong = try write("wrong.safetensors", [
            ("unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight", [2, 63]),
            ("unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight", [64, 2]),
        ])
        #expect(throws: ModelError.self) { try LoRA(path: wrong).applied(to: unet, weight: 1) }
    }
}
