// The VAE against diffusers: a tiny random AutoencoderKL loaded from its diffusers folder.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct VAEParityTests {
    @Test func encodeAndDecodeMatchDiffusers() throws {
        let folder = Repository.path("Tests/Fixtures/diffusion/vae")
        let vae = try AutoencoderKL(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let (mean, logVariance) = try vae.encode(io.tensor("image"))
        let meanError = relativeError(mean, try io.tensor("mean")), logvarError = relativeError(logVariance, try io.tensor("logvar"))
        let decodeError = relativeError(try vae.decode(io.tensor("latents")), try io.tensor("decoded"))
        print("vae: encode mean \(meanError), logvar \(logvarError), decode \(decodeError)")
        #expect(meanError <= 1e-4 && logvarError <= 1e-4 && decodeError <= 1e-4)
        #expect(vae.configuration.scalingFactor == 0.18215)
    }
}
