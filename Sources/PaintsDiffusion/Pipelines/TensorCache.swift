// PaintsDiffusion/Pipelines/TensorCache: results a model made (text embeddings of a prompt, the VAE latents of an init
// image, a reference's image embedding) kept by what they were made from, so the second press of "Colorize" with the
// same inputs skips that work. Bounded by entries and bytes, least recently used out first; its bytes are reported.
import Synchronization
import PaintsTensor

public final class TensorCache<Key: Hashable & Sendable>: Sendable {
    struct Entry {
        var tensor: Tensor
        var lastUsed: UInt64
    }
    private let state = Mutex<(map: [Key: Entry], clock: UInt64)>(([:], 0))
    public let capacity: Int
    public let maxBytes: Int

    public init(capacity: Int = 32, maxBytes: Int = 64 << 20) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// Bytes the kept tensors take.
    public var residentBytes: Int { state.withLock { $0.map.values.reduce(0) { $0 + 4 * $1.tensor.count } } }
    public var count: Int { state.withLock { $0.map.count } }

    /// The kept tensor of `key`, else `make()`'s, kept (unless it alone passes `maxBytes`). Returns whether it was kept.
    public func tensor<E: Error>(_ key: Key, make: () throws(E) -> Tensor) throws(E) -> (tensor: Tensor, cached: Bool) {
        let hit: Tensor? = state.withLock { s in
            guard var entry = s.map[key] else { return nil }
            s.clock += 1
            entry.lastUsed = s.clock
            s.map[key] = entry
            return entry.tensor
        }
        if let hit { return (hit, true) }
        let made = try make()
        guard 4 * made.count <= maxBytes else { return (made, false) }
        state.withLock { s in
            s.clock += 1
            s.map[key] = Entry(tensor: made, lastUsed: s.clock)
            while s.map.count > capacity || s.map.values.reduce(0, { $0 + 4 * $1.tensor.count }) > maxBytes,
                  let oldest = s.map.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                s.map[oldest] = nil
            }
        }
        return (made, false)
    }

    public func removeAll() { state.withLock { $0.map.removeAll() } }
}

/// A tensor's content as a cache key part (Swift's hasher: seeded per process, as the caches live in one process).
public func contentHash(_ values: [Float]) -> Int {
    var hasher = Hasher()
    values.withUnsafeBytes { hasher.combine(bytes: $0) }
    return hasher.finalize()
}

/// What a pipeline keeps between runs: the text encoder's output by prompt (and window count), and img2img sources'
/// latents by content. Shared by the copies of one loaded pipeline; dropped with it.
public final class PipelineCaches: Sendable {
    public struct TextKey: Hashable, Sendable {
        var prompt: String
        var windows: Int
        /// `StableDiffusionPipeline.textEncoderVariant`.
        var encoder: String
    }
    public struct SourceKey: Hashable, Sendable {
        var shape: [Int]
        var content: Int
    }
    public let text = TensorCache<TextKey>(capacity: 32, maxBytes: 16 << 20)
    public let sourceLatents = TensorCache<SourceKey>(capacity: 8, maxBytes: 64 << 20)

    public init() {}

    public var residentBytes: Int { text.residentBytes + sourceLatents.residentBytes }

    public func removeAll() {
        text.removeAll()
        sourceLatents.removeAll()
    }
}
