// PaintsEngine/LoRALibrary: the LoRAs in MODELS/lora, and which of them make few-step sampling possible (LCM, TCD,
// Hyper-SD: told by the name, as their authors publish them) with the sampler, steps and guidance each expects.
import Foundation
import PaintsDiffusion
import PaintsProtocol

public struct LoRAEntry: Sendable, Equatable {
    /// How a few-step LoRA is sampled.
    public struct FewStep: Sendable, Equatable {
        public var kind: String
        public var sampler: SamplerKind
        public var steps: Int
        public var guidance: Float
    }
    public var name: String
    public var path: String
    /// Set for LoRAs that distil the model to a few steps.
    public var fewStep: FewStep?
    /// Why it cannot be used (a pickle), nil when it can.
    public var problem: String?

    public var json: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name)]
        if let f = fewStep {
            o["few_step"] = ["kind": .string(f.kind), "sampler": .string(f.sampler.rawValue), "steps": JSONValue(f.steps),
                             "guidance": JSONValue(Double(f.guidance))]
        }
        if let problem { o["problem"] = .string(problem) }
        return .object(o)
    }

    /// The few-step kind a published name says: LCM-LoRA (`lcm-lora-sdv1-5`: LCM, 4 steps, guidance 1), TCD-LoRA
    /// (`TCD-SD15-LoRA`: TCD, 4 steps), Hyper-SD (`Hyper-SD15-8steps-lora`: trailing DDIM, the steps in the name).
    static func fewStep(_ name: String) -> FewStep? {
        let n = name.lowercased()
        if n.contains("lcm") { return FewStep(kind: "lcm", sampler: .lcm, steps: 4, guidance: 1) }
        if n.contains("tcd") { return FewStep(kind: "tcd", sampler: .tcd, steps: 4, guidance: 1) }
        if n.contains("hyper") {
            let digits = n.components(separatedBy: "step").first.map { String($0.reversed().prefix { $0.isNumber }.reversed()) } ?? ""
            return FewStep(kind: "hyper-sd", sampler: .ddimTrailing, steps: Int(digits).map { min(max($0, 1), 16) } ?? 8, guidance: 1)
        }
        return nil
    }
}

public enum LoRALibrary {
    /// The LoRAs of `directory` (MODELS/lora): `.safetensors` files by name; pickled ones listed with the reason.
    public static func entries(in directory: String) -> [LoRAEntry] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        return names.compactMap { file in
            let path = directory + "/" + file
            if let refusal = ControlNetCheckpoint.refusal(path: path) {
                let name = (file as NSString).deletingPathExtension
                return LoRAEntry(name: name, path: path, fewStep: LoRAEntry.fewStep(name), problem: refusal)
            }
            guard file.hasSuffix(".safetensors") else { return nil }
            let name = String(file.dropLast(".safetensors".count))
            return LoRAEntry(name: name, path: path, fewStep: LoRAEntry.fewStep(name), problem: nil)
        }
    }
}
