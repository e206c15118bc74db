// PaintsDiffusion/CLIP/CLIPImageProcessor: an 8-bit picture to the pixel_values a CLIP vision encoder takes.
// Matches: transformers' CLIPImageProcessor as it runs on PIL (transformers 4's CLIPImageProcessor, which IP-Adapter and
// SDRO used; transformers 5 calls it CLIPImageProcessorPil): RGBA composited onto white, PIL's bicubic resize so the
// shortest side is 224, centre crop 224x224, x/255, (x - mean) / std with OpenAI CLIP's mean and std. Equal to it
// bit for bit (Tests/Fixtures/clip-vision). It takes bytes (RGB, or RGBA as PaintsRaster's RGBAImage.pixels), so that
// PaintsDiffusion does not depend on PaintsRaster.
import Foundation
import PaintsTensor

public struct CLIPImageProcessor: Sendable, Equatable {
    /// What the resize step aims at (preprocessor_config.json's `size`).
    public enum Resize: Sendable, Equatable {
        /// The shorter side becomes this long, the longer one int(edge * long / short) (torchvision's rule).
        case shortestEdge(Int)
        case exact(height: Int, width: Int)
    }

    public struct Size: Sendable, Equatable {
        public var height: Int
        public var width: Int
        public init(height: Int, width: Int) {
            self.height = height
            self.width = width
        }
    }

    /// nil: no resize (`do_resize: false`). Resampling is always PIL's bicubic (`resample: 3`).
    public var resize: Resize?
    /// nil: no crop (`do_center_crop: false`). A crop larger than the picture pads it with black, as transformers does.
    public var cropSize: Size?
    /// nil: no rescale (`do_rescale: false`).
    public var rescaleFactor: Double?
    /// Per-channel mean and standard deviation (R, G, B); nil: no normalisation (`do_normalize: false`).
    public var mean: [Float]?
    public var std: [Float]?

    /// OpenAI CLIP's normalisation (transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD), as float32 the way numpy rounds
    /// the Python floats.
    public static let openAICLIPMean: [Float] = [0.48145466, 0.4578275, 0.40821073].map { Float($0 as Double) }
    public static let openAICLIPStd: [Float] = [0.26862954, 0.26130258, 0.27577711].map { Float($0 as Double) }

    /// The published CLIP settings: shortest edge 224, crop 224x224, 1/255, OpenAI CLIP's mean and std.
    public init(resize: Resize? = .shortestEdge(224), cropSize: Size? = Size(height: 224, width: 224),
                rescaleFactor: Double? = 1.0 / 255.0,
                mean: [Float]? = CLIPImageProcessor.openAICLIPMean, std: [Float]? = CLIPImageProcessor.openAICLIPStd) {
        self.resize = resize
        self.cropSize = cropSize
        self.rescaleFactor = rescaleFactor
        self.mean = mean
        self.std = std
    }

    /// The settings of a `preprocessor_config.json` (either style: `size: 224` or `size: {"shortest_edge": 224}`,
    /// `crop_size: 224` or `{"height", "width"}`); absent members take CLIPImageProcessor's defaults. `do_convert_rgb`
    /// is not read: the picture is always made RGB (RGBA composited onto white).
    public init(json: [String: Any], path: String = "preprocessor_config.json") throws(ModelError) {
        self.init()
        func flag(_ key: String) throws(ModelError) -> Bool {
            guard let value = json[key], !(value is NSNull) else { return true }
            guard let flag = value as? Bool else { throw .configuration("\(path): \(key) must be true or false") }
            return flag
        }
        func side(_ value: Any?, _ key: String) throws(ModelError) -> Int {
            guard let n = try configurationInt(value, key, in: 1...(1 << 14), path: path) else {
                throw .configuration("\(path): \(key) must be an integer")
            }
            return n
        }
        if let resample = json["resample"], !(resample is NSNull) {
            guard let n = resample as? NSNumber, n.doubleValue == 3 else {
                throw .configuration("\(path): resample \(resample) is not supported (only 3, bicubic)")
            }
        }
        if try !flag("do_resize") {
            resize = nil
        } else if let size = json["size"], !(size is NSNull) {
            if let dictionary = size as? [String: Any] {
                if let edge = dictionary["shortest_edge"] {
                    guard dictionary["longest_edge"] == nil else { throw .configuration("\(path): size.longest_edge is not supported") }
                    resize = .shortestEdge(try side(edge, "size.shortest_edge"))
                } else {
                    resize = .exact(height: try side(dictionary["height"], "size.height"), width: try side(dictionary["width"], "size.width"))
                }
            } else {
                resize = .shortestEdge(try side(size, "size"))
            }
        }
        if try !flag("do_center_crop") {
            cropSize = nil
        } else if let crop = json["crop_size"], !(crop is NSNull) {
            if let dictionary = crop as? [String: Any] {
                cropSize = Size(height: try side(dictionary["height"], "crop_size.height"), width: try side(dictionary["width"], "crop_size.width"))
            } else {
                let n = try side(crop, "crop_size")
                cropSize = Size(height: n, width: n)
            }
        }
        if try !flag("do_rescale") {
            rescaleFactor = nil
        } else if let factor = json["rescale_factor"], !(factor is NSNull) {
            guard let f = (factor as? NSNumber)?.doubleValue, f.isFinite, f > 0 else { throw .configuration("\(path): rescale_factor must be a positive number") }
            // Foundation's JSON reader on Linux can land an ulp away from the nearest double (0.00392156862745098, what
            // transformers writes for 1/255, reads as 0.0039215686274509795); Python reads 1/255 exactly.
            rescaleFactor = abs(f * 255 - 1) < 1e-12 ? 1.0 / 255.0 : f
        }
        if try !flag("do_normalize") {
            mean = nil
            std = nil
        } else {
            func channels(_ key: String, positive: Bool) throws(ModelError) -> [Float]? {
                guard let value = json[key], !(value is NSNull) else { return nil }
                let numbers = (value as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [(value as? NSNumber)?.doubleValue].compactMap { $0 }
                let list = numbers.count == 1 ? Array(repeating: numbers[0], count: 3) : numbers
                guard list.count == 3, list.allSatisfy({ $0.isFinite && (!positive || $0 > 0) }) else {
                    throw .configuration("\(path): \(key) must be 3 \(positive ? "positive " : "")numbers")
                }
                return list.map { Float($0) }
            }
            mean = try channels("image_mean", positive: false) ?? mean
            std = try channels("image_std", positive: true) ?? std
        }
    }

    /// Reads `folder/preprocessor_config.json`.
    public init(folder: String) throws(ModelError) {
        let path = folder + "/preprocessor_config.json"
        guard let json = RegularFile.jsonObject(path)
        else { throw .configuration("\(path): missing, not a regular file of at most 16 MiB, or not a JSON object") }
        try self.init(json: json, path: path)
    }

    /// pixel_values [1, 3, H, W] for one picture: `pixels` row by row from the top, interleaved RGB (`channels` 3)
    /// or RGBA with straight alpha (`channels` 4, PaintsRaster's RGBAImage.pixels), `width` x `height`.
    public func pixelValues(pixels: [UInt8], width: Int, height: Int, channels: Int) throws(ModelError) -> Tensor {
        let picture = try resizedAndCropped(pixels: pixels, width: width, height: height, channels: channels)
        let plane = picture.width * picture.height
        // Each 8-bit level maps to one value per channel: float64 x * factor to float32, then (x - mean) / std in
        // float32, as numpy does in transformers' rescale and normalize.
        var out = Tensor(zeros: [1, 3, picture.height, picture.width])
        for c in 0..<3 {
            let table: [Float] = (0..<256).map { level in
                var x = rescaleFactor.map { Float(Double(level) * $0) } ?? Float(level)
                if let mean, let std { x = (x - mean[c]) / std[c] }
                return x
            }
            for i in 0..<plane { out.data[c * plane + i] = table[Int(picture.rgb[i * 3 + c])] }
        }
        return out
    }

    /// The 8-bit RGB picture after compositing, resizing and cropping (what the rescale and normalisation then map),
    /// interleaved, row by row.
    public func resizedAndCropped(pixels: [UInt8], width: Int, height: Int, channels: Int) throws(ModelError)
        -> (rgb: [UInt8], width: Int, height: Int) {
        guard channels == 3 || channels == 4 else { throw .configuration("a picture has 3 (RGB) or 4 (RGBA) channels, not \(channels)") }
        guard (1...(1 << 16)).contains(width), (1...(1 << 16)).contains(height), pixels.count == width * height * channels else {
            throw .configuration("a \(width)x\(height) picture of \(channels) channels needs \(width * height * channels) bytes, not \(pixels.count)")
        }
        if (mean == nil) != (std == nil) || (mean.map { $0.count != 3 } ?? false) || (std.map { $0.count != 3 || $0.contains(0) } ?? false) {
            throw .configuration("normalisation needs 3 means and 3 non-zero standard deviations")
        }
        try cancellationPoint()
        var (targetWidth, targetHeight) = (width, height)
        switch resize {
        case .shortestEdge(let edge)?:
            guard (1...(1 << 14)).contains(edge) else { throw .configuration("shortest edge \(edge) is outside 1...16384") }
            // transformers' get_resize_output_image_size: the long side is int(edge * long / short).
            let short = min(width, height), long = max(width, height)
            let newLong = Int(Double(edge * long) / Double(short))
            guard newLong <= 1 << 16 else { throw .configuration("a \(width)x\(height) picture would be resized to \(newLong) pixels") }
            (targetWidth, targetHeight) = width <= height ? (edge, newLong) : (newLong, edge)
        case .exact(let h, let w)?:
            guard (1...(1 << 14)).contains(h), (1...(1 << 14)).contains(w) else { throw .configuration("resize size \(w)x\(h) is outside 1...16384") }
            (targetWidth, targetHeight) = (w, h)
        case nil: break
        }
        // The horizontal pass keeps the resized width for every input row it reads.
        guard targetWidth * targetHeight <= 1 << 26, targetWidth * height <= max(1 << 26, width * height) else {
            throw .configuration("resizing a \(width)x\(height) picture to \(targetWidth)x\(targetHeight) is too large")
        }
        let resized = pixels.withUnsafeBufferPointer { source in
            Self.bicubicResize(source, width: width, height: height, channels: channels, toWidth: targetWidth, toHeight: targetHeight)
        }
        guard let cropSize else { return (resized, targetWidth, targetHeight) }
        guard (1...(1 << 14)).contains(cropSize.height), (1...(1 << 14)).contains(cropSize.width) else {
            throw .configuration("crop size \(cropSize.width)x\(cropSize.height) is outside 1...16384")
        }
        return (Self.centreCrop(resized, width: targetWidth, height: targetHeight, to: cropSize), cropSize.width, cropSize.height)
    }

    // MARK: - The steps, as PIL and numpy do them

    /// Row `y` of the input as RGB. RGBA is composited onto opaque white as PIL.Image.alpha_composite does, which
    /// equals round((v a + 255 (255 - a)) / 255) (checked on all 65536 pairs; the quotient is never a tie).
    static func rgbRow(_ source: UnsafeBufferPointer<UInt8>, y: Int, width: Int, channels: Int, into row: UnsafeMutablePointer<UInt8>) {
        let start = y * width * channels
        if channels == 3 {
            for i in 0..<(width * 3) { row[i] = source[start + i] }
            return
        }
        for x in 0..<width {
            let p = start + x * 4, a = Int(source[p + 3])
            for c in 0..<3 { row[x * 3 + c] = UInt8((Int(source[p + c]) * a + 255 * (255 - a) + 127) / 255) }
        }
    }

    /// PIL's bicubic filter (a = -0.5, support 2).
    static func bicubic(_ t: Double) -> Double {
        let a = -0.5
        let x = t < 0 ? -t : t
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Fixed-point bits of PIL's 8-bit resampling coefficients (Resample.c: 32 - 8 - 2).
    static let precisionBits = 22

    /// PIL's precompute_coeffs + normalize_coeffs_8bpc for resizing `inSize` samples to `outSize`: per output sample the
    /// first input sample and the tap count, and `taps` fixed-point weights per output sample.
    static func coefficients(inSize: Int, outSize: Int) -> (bounds: [(first: Int, count: Int)], taps: Int, weights: [Int]) {
        let scale = Double(Float(inSize)) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var bounds: [(first: Int, count: Int)] = []
        var weights = [Int](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1.0 / filterScale
            let first = max(0, Int(center - support + 0.5))   // C's (int) truncates toward zero, as Int() does
            let count = min(inSize, Int(center + support + 0.5)) - first
            var sum = 0.0
            for x in 0..<count {
                k[x] = bicubic((Double(x + first) - center + 0.5) * ss)
                sum += k[x]
            }
            for x in 0..<count {
                let w = sum != 0 ? k[x] / sum : k[x]
                weights[xx * taps + x] = Int(w < 0 ? -0.5 + w * Double(1 << precisionBits) : 0.5 + w * Double(1 << precisionBits))
            }
            bounds.append((first, count))
        }
        return (bounds, taps, weights)
    }

    /// The fixed-point sum back to 8 bits (PIL's clip8).
    @inline(__always) static func clip8(_ sum: Int) -> UInt8 { UInt8(clamping: sum >> precisionBits) }

    /// PIL's Image.resize(BICUBIC) of the RGB picture, as ImagingResampleInner runs it: a horizontal pass over the rows
    /// the vertical pass reads (to 8 bits), then the vertical pass; a side that keeps its size is not resampled.
    static func bicubicResize(_ source: UnsafeBufferPointer<UInt8>, width: Int, height: Int, channels: Int,
                              toWidth: Int, toHeight: Int) -> [UInt8] {
        let round = 1 << (precisionBits - 1)
        let vertical = coefficients(inSize: height, outSize: toHeight)
        let needHorizontal = toWidth != width, needVertical = toHeight != height
        // The rows the vertical pass reads (all of them when it does not run).
        let firstRow = needVertical ? vertical.bounds[0].first : 0
        let lastRow = needVertical ? vertical.bounds[toHeight - 1].first + vertical.bounds[toHeight - 1].count : height
        var rows = [UInt8](repeating: 0, count: toWidth * (lastRow - firstRow) * 3)
        var line = [UInt8](repeating: 0, count: width * 3)
        let horizontal = needHorizontal ? coefficients(inSize: width, outSize: toWidth) : nil
        rows.withUnsafeMutableBufferPointer { out in
            line.withUnsafeMutableBufferPointer { line in
                for y in firstRow..<lastRow {
                    let target = out.baseAddress! + (y - firstRow) * toWidth * 3
                    guard let horizontal else {
                        rgbRow(source, y: y, width: width, channels: channels, into: target)
                        continue
                    }
                    rgbRow(source, y: y, width: width, channels: channels, into: line.baseAddress!)
                    horizontal.weights.withUnsafeBufferPointer { weights in
                        for xx in 0..<toWidth {
                            let (first, count) = horizontal.bounds[xx]
                            let k = weights.baseAddress! + xx * horizontal.taps
                            var s0 = round, s1 = round, s2 = round
                            for x in 0..<count {
                                let p = (first + x) * 3
                                s0 += Int(line[p]) * k[x]
                                s1 += Int(line[p + 1]) * k[x]
                                s2 += Int(line[p + 2]) * k[x]
                            }
                            target[xx * 3] = clip8(s0)
                            target[xx * 3 + 1] = clip8(s1)
                            target[xx * 3 + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        guard needVertical else { return rows }
        var out = [UInt8](repeating: 0, count: toWidth * toHeight * 3)
        let stride = toWidth * 3
        rows.withUnsafeBufferPointer { rows in
            vertical.weights.withUnsafeBufferPointer { weights in
                out.withUnsafeMutableBufferPointer { out in
                    for yy in 0..<toHeight {
                        let (first, count) = vertical.bounds[yy]
                        let k = weights.baseAddress! + yy * vertical.taps
                        let base = (first - firstRow) * stride
                        for i in 0..<stride {
                            var s = round
                            for y in 0..<count { s += Int(rows[base + y * stride + i]) * k[y] }
                            out[yy * stride + i] = clip8(s)
                        }
                    }
                }
            }
        }
        return out
    }

    /// transformers' center_crop: the window starts at floor((side - crop) / 2); where it reaches past the picture
    /// (a crop larger than the picture) it is black.
    static func centreCrop(_ rgb: [UInt8], width: Int, height: Int, to size: Size) -> [UInt8] {
        func floorHalf(_ n: Int) -> Int { n >= 0 ? n / 2 : -((-n + 1) / 2) }
        let top = floorHalf(height - size.height), left = floorHalf(width - size.width)
        var out = [UInt8](repeating: 0, count: size.width * size.height * 3)
        for y in 0..<size.height where (0..<height).contains(top + y) {
            for x in 0..<size.width where (0..<width).contains(left + x) {
                for c in 0..<3 { out[(y * size.width + x) * 3 + c] = rgb[((top + y) * width + left + x) * 3 + c] }
            }
        }
        return out
    }
}
