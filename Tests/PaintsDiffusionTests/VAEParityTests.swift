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

@Suite struct VAETilingTests {
    @Test func tiledEncodeAndDecodeMatchDiffusers() throws {
        // diffusers with enable_tiling(): 32-pixel tiles (8 latents) on inputs of several tiles, blended at the seams.
        let folder = Repository.path("Tests/Fixtures/diffusion/vae")
        let vae = try AutoencoderKL(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/tiled.safetensors")
        let decoded = try vae.decode(io.tensor("latents"), tiling: .whenLargerThanTile)
        let mean = try vae.encode(io.tensor("image"), tiling: .whenLargerThanTile).mean
        let decodeError = relativeError(decoded, try io.tensor("decoded")), meanError = relativeError(mean, try io.tensor("mean"))
        print("vae tiled: encode mean \(meanError), decode \(decodeError)")
        #expect(decoded.shape == [1, 3, 56, 44] && mean.shape == [1, 4, 14, 11])
        #expect(decodeError <= 1e-4 && meanError <= 1e-4)
        // Tiling changes the result (each tile sees less context): the untiled pass must differ, or this test proves nothing.
        #expect(relativeError(try vae.decode(io.tensor("latents"), tiling: .off), try io.tensor("decoded")) > 1e-3)
    }
}
