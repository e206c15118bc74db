// PaintsEngine/ImageEmbeddingCache: what an image encoder made of a reference picture, kept by the picture's content, so
// that changing the prompt, the scribbles or the seed never encodes the same reference twice.
import Foundation
import PaintsRaster
import PaintsTensor
import Synchronization

public final class ImageEmbeddingCache: Sendable {
    /// The encoder, what was taken from it ("image_embeds", "penultimate"), and the picture's size and content hash.
    struct Key: Hashable {
        var encoder: String
        var output: String
        var width: Int
        var height: Int
        var content: Int
    }
    struct Entry {
        var tensor: Tensor
        var lastUsed: UInt64
    }
    private let entries = Mutex<(map: [Key: Entry], clock: UInt64)>(([:], 0))
    /// How many embeddings are kept; the least recently used goes first.
    public let capacity: Int

    public init(capacity: Int = 16) { self.capacity = capacity }

    /// Bytes the kept tensors take.
    public var residentBytes: Int { entries.withLock { $0.map.values.reduce(0) { $0 + 4 * $1.tensor.count } } }
    public var count: Int { entries.withLock { $0.map.count } }

    /// The key of `picture` (nil: the encoder's output for an all-zero input, the "no image" of IP-Adapter Plus).
    static func key(encoder: String, output: String, picture: RGBAImage?) -> Key {
        guard let picture else { return Key(encoder: encoder, output: output, width: 0, height: 0, content: 0) }
        var hasher = Hasher()
        picture.pixels.withUnsafeBytes { hasher.combine(bytes: $0) }
        return Key(encoder: encoder, output: output, width: picture.width, height: picture.height, content: hasher.finalize())
    }

    /// The cached tensor for `picture`, else `make()`'s, kept. Returns whether it was cached.
    public func tensor(encoder: String, output: String, picture: RGBAImage?,
                       make: () throws -> Tensor) rethrows -> (tensor: Tensor, cached: Bool) {
        let key = Self.key(encoder: encoder, output: output, picture: picture)
        let hit: Tensor? = entries.withLock { state in
            guard var entry = state.map[key] else { return nil }
            state.clock += 1
            entry.lastUsed = state.clock
            state.map[key] = entry
            return entry.tensor
        }
        if let hit { return (hit, true) }
        let made = try make()
        entries.withLock { state in
            state.clock += 1
            state.map[key] = Entry(tensor: made, lastUsed: state.clock)
            while state.map.count > capacity, let oldest = state.map.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                state.map[oldest] = nil
            }
        }
        return (made, false)
    }

    public func removeAll() { entries.withLock { $0.map.removeAll() } }
}
