// PaintsEngine/ImageEmbeddingCache: what an image encoder made of a reference picture, kept by the picture's content, so
// that changing the prompt, the scribbles or the seed never encodes the same reference twice.
import Foundation
import PaintsDiffusion
import PaintsRaster
import PaintsTensor

public final class ImageEmbeddingCache: Sendable {
    /// The encoder, what was taken from it ("image_embeds", "penultimate"), and the picture's size and content hash.
    struct Key: Hashable, Sendable {
        var encoder: String
        var output: String
        var width: Int
        var height: Int
        var content: Int
    }
    private let tensors: TensorCache<Key>

    public init(capacity: Int = 16) { tensors = TensorCache(capacity: capacity, maxBytes: 128 << 20) }

    /// Bytes the kept tensors take.
    public var residentBytes: Int { tensors.residentBytes }
    public var count: Int { tensors.count }

    /// The key of `picture` (nil: the encoder's output for an all-zero input, the "no image" of IP-Adapter Plus).
    static func key(encoder: String, output: String, picture: RGBAImage?) -> Key {
        guard let picture else { return Key(encoder: encoder, output: output, width: 0, height: 0, content: 0) }
        var hasher = Hasher()
        picture.pixels.withUnsafeBytes { hasher.combine(bytes: $0) }
        return Key(encoder: encoder, output: output, width: picture.width, height: picture.height, content: hasher.finalize())
    }

    /// The cached tensor for `picture`, else `make()`'s, kept. Returns whether it was cached.
    public func tensor(encoder: String, output: String, picture: RGBAImage?,
                       make: () throws -> Tensor) throws -> (tensor: Tensor, cached: Bool) {
        try tensors.tensor(Self.key(encoder: encoder, output: output, picture: picture), make: make)
    }

    public func removeAll() { tensors.removeAll() }
}
