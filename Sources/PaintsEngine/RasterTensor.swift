// PaintsEngine/RasterTensor: RGBA layers to model tensors and back (RGB planes in -1...1, alpha over white).
import PaintsRaster
import PaintsTensor

enum RasterTensor {
    /// [1, 3, H, W] in -1...1 from the layer's RGB (flattened over white first when it has transparency).
    static func tensor(_ image: RGBAImage) -> Tensor {
        let opaque = image.flattened(onto: .white)
        let plane = image.width * image.height
        var out = Tensor(zeros: [1, 3, image.height, image.width])
        for p in 0..<plane {
            let c = opaque.pixel(p)
            out.data[p] = Float(c.r) / 127.5 - 1
            out.data[plane + p] = Float(c.g) / 127.5 - 1
            out.data[2 * plane + p] = Float(c.b) / 127.5 - 1
        }
        return out
    }

    /// An opaque layer from [1, 3, H, W] in -1...1 (the reference's x * 127.5 + 127.5, clipped).
    static func image(_ t: Tensor) -> RGBAImage {
        let (h, w) = (t.shape[2], t.shape[3]), plane = h * w
        var out = RGBAImage(width: w, height: h)
        func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, (v * 127.5 + 127.5).rounded()))) }
        for p in 0..<plane { out.setPixel(p, RGBA(byte(t.data[p]), byte(t.data[plane + p]), byte(t.data[2 * plane + p]))) }
        return out
    }
}
