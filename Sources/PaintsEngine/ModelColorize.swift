// PaintsEngine/ModelColorize: what the model colorize engines (`sd`, `sd-reference-only`) share around their sampling:
// the working size, latent previews, and the colour brought back to the canvas as layers under the line art.
import PaintsDiffusion
import PaintsProtocol
import PaintsRaster
import PaintsTensor

enum ModelColorize {
    /// The working size of a `width` x `height` canvas: its longest side scaled to `side`, each side rounded to the
    /// nearest multiple of `multiple` (what the UNet and VAE need), at least one multiple.
    static func workingSize(width: Int, height: Int, side: Int, multiple: Int) -> (width: Int, height: Int) {
        let scale = Double(side) / Double(max(width, height))
        func fit(_ v: Int) -> Int { max(multiple, Int((Double(v) * scale / Double(multiple)).rounded()) * multiple) }
        return (fit(width), fit(height))
    }

    /// A progress preview of SD latents [1, 4, h, w]: `StableDiffusionModel.latentPreview` as an opaque picture,
    /// `scale` times larger.
    /// A progress preview decoded by TAESD: the latents area-averaged to at most `maxLatentSide` a side first (a
    /// preview is at most 256 px a side: 32 latent pixels), so its cost stays small beside the step.
    static func preview(_ latents: Tensor, taesd: AutoencoderTiny, maxLatentSide: Int = 32) throws(ModelError) -> RGBAImage {
        let (c, h, w) = (latents.shape[1], latents.shape[2], latents.shape[3])
        let f = max(1, (max(h, w) + maxLatentSide - 1) / maxLatentSide)
        var small = latents
        if f > 1 {
            let (sh, sw) = ((h + f - 1) / f, (w + f - 1) / f)
            small = Tensor(zeros: [1, c, sh, sw])
            for k in 0..<c {
                for y in 0..<sh {
                    for x in 0..<sw {
                        var sum: Float = 0, n: Float = 0
                        for yy in (y * f)..<min(h, y * f + f) {
                            for xx in (x * f)..<min(w, x * f + f) { sum += latents.data[(k * h + yy) * w + xx]; n += 1 }
                        }
                        small.data[(k * sh + y) * sw + x] = sum / n
                    }
                }
            }
        }
        let image = try taesd.decode(small)
        let (ih, iw) = (image.shape[2], image.shape[3]), plane = ih * iw
        var picture = RGBAImage(width: iw, height: ih, fill: .white)
        func byte(_ v: Float) -> UInt8 { UInt8(min(255, max(0, (v / 2 + 0.5) * 255)).rounded()) }
        for p in 0..<plane { picture.setPixel(p, RGBA(byte(image.data[p]), byte(image.data[plane + p]), byte(image.data[2 * plane + p]))) }
        return picture
    }

    static func preview(_ latents: Tensor, scale: Int) -> RGBAImage {
        let preview = StableDiffusionModel.latentPreview(latents, scale: scale)
        var picture = RGBAImage(width: preview.width, height: preview.height, fill: .white)
        for p in 0..<(preview.width * preview.height) {
            picture.setPixel(p, RGBA(UInt8(preview.rgb[p * 3] * 255), UInt8(preview.rgb[p * 3 + 1] * 255), UInt8(preview.rgb[p * 3 + 2] * 255)))
        }
        return picture
    }

    /// The working-size picture `image` ([1, 3, h, w] in 0...1) back on the canvas of `sketch`: the colour layer cut
    /// along the full-size fill's inside (grey or coloured line areas left to the line art, as in the flats), each
    /// scribbled region pulled toward its scribble by `paletteLock` (0: not at all), and the one picture with the
    /// lines multiplied over it. Returns (picture, colour layer).
    static func canvasColour(_ image: Tensor, sketch: RGBAImage, fill: FlatFill, paletteLock: Float,
                             context: JobContext) throws(ProtocolError) -> (picture: RGBAImage, color: RGBAImage) {
        let working = RasterTensor.image(image.map { $0 * 2 - 1 })
        // Grey or coloured line areas stay as drawn: no colour under them, as in the flats.
        let painted = zip(fill.inside, fill.ownColourLines).map { $0 && !$1 }
        var color = try ColourLayers.colourLayer(working: working, canvasWidth: sketch.width, canvasHeight: sketch.height,
                                                 inside: painted, context: context)
        if paletteLock > 0 {
            try ColourLayers.lockPalette(&color, flats: fill.flats, scribbleColours: fill.scribbleColours, amount: paletteLock, context: context)
        }
        let picture = try ColourLayers.linesMultiplied(color: color, sketch: sketch, context: context)
        return (picture, color)
    }
}
