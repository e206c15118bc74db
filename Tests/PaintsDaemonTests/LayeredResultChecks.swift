// What every model colorize result through the daemon promises, checked once for the engines that make one (sd,
// sd-reference-only): the layers by name, each the sketch's size, and the line art kept.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

/// The layers of a colorize result, decoded, by name.
func decodedLayers(_ reply: Reply) throws -> [String: (image: RGBAImage, visible: Bool)] {
    var out: [String: (RGBAImage, Bool)] = [:]
    for layer in reply.result["layers"]?.arrayValue ?? [] {
        let name = try #require(layer["name"]?.stringValue)
        out[name] = (try PNGCodec.decode(try #require(reply.imageData(layer["image"]))), layer["visible"] == true)
    }
    return out
}

/// A result of `color` (shown) over `flats` (hidden), each `sketch`'s size, with black ink exact in the one picture,
/// the colour layer transparent at the canvas corners (outside the drawing) where the picture is the sketch's own
/// paper, and the colour layer opaque over at least a tenth of the canvas. Returns the picture and the two layers.
func checkColourOverFlats(_ reply: Reply, sketch: RGBAImage) throws -> (image: RGBAImage, color: RGBAImage, flats: RGBAImage) {
    #expect(reply.result["layers"]?.arrayValue?.map { $0["name"] } == ["color", "flats"])
    let layers = try decodedLayers(reply)
    let color = try #require(layers["color"]), flats = try #require(layers["flats"])
    #expect(color.visible && !flats.visible)
    let image = try PNGCodec.decode(try #require(reply.imageData(reply.result["image"])))
    for picture in [image, color.image, flats.image] { #expect(picture.width == sketch.width && picture.height == sketch.height) }
    var black = 0
    for p in 0..<sketch.pixelCount where sketch.pixel(p) == .black {
        black += 1
        #expect(image.pixel(p) == .black, "pixel \(p)")
        if image.pixel(p) != .black { break }
    }
    #expect(black > 1000)
    for corner in [0, sketch.width - 1, sketch.pixelCount - sketch.width, sketch.pixelCount - 1] {
        #expect(color.image.pixel(corner).a == 0)
        #expect(image.pixel(corner) == sketch.pixel(corner))
    }
    let opaque = (0..<color.image.pixelCount).filter { color.image.pixel($0).a == 255 }.count
    #expect(opaque > sketch.pixelCount / 10)
    return (image, color.image, flats.image)
}
