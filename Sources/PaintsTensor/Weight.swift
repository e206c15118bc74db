// PaintsTensor/Weight: parameter matrices kept in their stored dtype (f32, f16 or bf16), in the checkpoint's memory
// mapping or in memory, and read as float32 on use.
//
// Why: an SD1.5 UNet is 3.4 GB in f32 and 1.7 GB in f16. Copying a mapped file into arrays doubles the peak (the mapped
// pages stay resident), and widening f16 to f32 at load doubles the rest. A `Weight` reads f32 in place and widens
// f16/bf16 layer by layer into a reused scratch buffer (performance.md: ~3-5% of the time for half the memory).
import CTensorKernels
import Glibc
import Synchronization

/// Where a weight's bytes live: a mapped file (kept alive here) or a buffer of its own.
final class WeightBytes: @unchecked Sendable {
    // Sendable: never written after init.
    let base: UnsafeRawPointer
    private let file: MappedFile?
    private let parent: WeightBytes?

    init(mapped file: MappedFile, offset: Int) {
        base = file.base + offset
        self.file = file
        parent = nil
    }

    /// A window into another weight's bytes (kept alive here).
    init(within parent: WeightBytes, offset: Int) {
        base = parent.base + offset
        file = nil
        self.parent = parent
    }

    /// `floats` rounded to IEEE half (in parallel for large weights).
    init(halvesOf floats: [Float]) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, floats.count) * 2, alignment: 64)
        let halves = UnsafeSendablePointer(buffer.assumingMemoryBound(to: UInt16.self))
        floats.withUnsafeBufferPointer { source in
            guard let start = source.baseAddress else { return }
            let from = UnsafeSendablePointer(start)
            Parallel.forEachChunk(floats.count, minimumChunk: 1 << 18) { range in
                VectorMath.narrow(from.pointer + range.lowerBound, toHalf: halves.pointer + range.lowerBound, count: range.count)
            }
        }
        base = UnsafeRawPointer(buffer)
        file = nil
        parent = nil
    }

    init(floats: [Float]) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, floats.count) * 4, alignment: 64)
        floats.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(buffer), byteCount: $0.count) }
        base = UnsafeRawPointer(buffer)
        file = nil
        parent = nil
    }

    deinit { if file == nil && parent == nil { UnsafeMutableRawPointer(mutating: base).deallocate() } }

    /// Whether the bytes are a file's mapping (read back from the file when their pages are released).
    var isMapped: Bool { file != nil || parent?.isMapped == true }

    /// A copy in a kernel's layout (`Weight.packed(for:)` or `Weight.panels()`), made on first use and kept; at most one.
    let packedCopy = Mutex<PackedCopy?>(nil)
}

/// Weights in a kernel's layout, and which layout it is.
final class PackedCopy: @unchecked Sendable {
    /// A oneDNN kernel's weight layout (the primitive's), or CTensorKernels' panels of 16 outputs (pk_panels_pack).
    enum Layout {
        case oneDNN(OneDNN.Primitive)
        case panels
    }

    // Sendable: written once, before it is shared.
    let layout: Layout
    let bytes: UnsafeMutableRawPointer

    init(layout: Layout, bytes: UnsafeMutableRawPointer) {
        self.layout = layout
        self.bytes = bytes
    }

    deinit { bytes.deallocate() }
}

public struct Weight: Sendable {
    public let shape: [Int]
    public let dtype: DType
    let bytes: WeightBytes

    /// A float32 weight held in memory.
    public init(_ tensor: Tensor) {
        shape = tensor.shape
        dtype = .f32
        bytes = WeightBytes(floats: tensor.data)
    }

    /// `tensor` kept as `dtype`: f16 rounds to nearest even (half the memory, widened on use as a stored f16 weight
    /// is); any other dtype keeps float32. For computed weights (LoRAs merged into a layer) held at the precision of the
    /// weight they replace.
    public init(_ tensor: Tensor, storedAs dtype: DType) {
        guard dtype == .f16 else {
            self.init(tensor)
            return
        }
        self.init(shape: tensor.shape, dtype: .f16, bytes: WeightBytes(halvesOf: tensor.data))
    }

    init(shape: [Int], dtype: DType, bytes: WeightBytes) {
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    /// Bytes held (the stored dtype's size).
    public var storedBytes: Int { count * dtype.size }

    /// The same storage under another shape of equal size.
    public func reshaped(_ newShape: [Int]) -> Weight {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) to \(newShape)")
        return Weight(shape: newShape, dtype: dtype, bytes: bytes)
    }

    /// Rows `range` of the first dimension, sharing this weight's storage (fused q/k/v projections split apart).
    public func rows(_ range: Range<Int>) -> Weight {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) of \(shape)")
        let rowBytes = shape.dropFirst().reduce(1, *) * dtype.size
        return Weight(shape: [range.count] + shape.dropFirst(), dtype: dtype,
                      bytes: WeightBytes(within: bytes, offset: range.lowerBound * rowBytes))
    }

    /// Calls `body` with the values as float32: in place for aligned f32, else widened into a scratch buffer that is
    /// reused by later calls (do not keep the pointer).
    public func withFloats<R, E: Error>(_ body: (UnsafePointer<Float>) throws(E) -> R) throws(E) -> R {
        if dtype == .f32, Int(bitPattern: bytes.base) % MemoryLayout<Float>.alignment == 0 {
            return try body(bytes.base.assumingMemoryBound(to: Float.self))
        }
        return try ScratchBuffers.shared.with(count: count) { (scratch: UnsafeMutablePointer<Float>) throws(E) -> R in
            KernelProfile.measure(.widening) { Self.widen(bytes.base, dtype: dtype, count: count, into: scratch) }
            return try body(UnsafePointer(scratch))
        }
    }

    /// Whether `packed(for:)` may keep a copy: float32 weights mapped from a file, whose pages the copy replaces.
    var isPackable: Bool { dtype == .f32 && bytes.isMapped && Int(bitPattern: bytes.base) % MemoryLayout<Float>.alignment == 0 }

    /// Whether `packed(for:)` keeps a copy already.
    var hasPackedCopy: Bool { bytes.packedCopy.withLock { $0 != nil } }

    /// The weights in the layout of `primitive`'s kernel (a linear layer's: its weight reorder applied once), kept
    /// with the weight; the file pages they were read from are released at once, so the copy takes their place in
    /// memory (a later plain read maps them again from the file). nil when the weight is not packable, the kernel takes plain weights, the
    /// weight already keeps a copy for a kernel of another layout, or the reorder failed.
    func packed(for primitive: OneDNN.Primitive) -> UnsafeRawPointer? {
        guard isPackable, let reorder = primitive.weightsReorder else { return nil }
        return packedCopy(bytes: primitive.weightFloats * 4) { copy in
            if case .oneDNN(let kept) = copy { OneDNN.sameWeights(kept, primitive) } else { false }
        } pack: { buffer in
            OneDNN.reorder(reorder, from: bytes.base, to: buffer) ? .oneDNN(primitive) : nil
        }
    }

    /// Whether `panels()` keeps a copy already.
    var hasPanels: Bool { bytes.packedCopy.withLock { if case .panels = $0?.layout { true } else { false } } }

    /// Whether `panels()` may keep a copy: float32 or IEEE half weights [out][in] mapped from a file.
    var canKeepPanels: Bool {
        rank == 2 && (dtype == .f32 || dtype == .f16) && bytes.isMapped && Int(bitPattern: bytes.base) % dtype.size == 0
    }

    /// The weights [out][in] packed in panels of 16 outputs for pk_linear_panels, in their stored type (float32 or
    /// half), kept with the weight like `packed(for:)`'s copy (the file pages released, so memory stays as it was);
    /// nil when the weight cannot keep panels or keeps another layout.
    func panels() -> UnsafeRawPointer? {
        guard canKeepPanels else { return nil }
        let (outputs, inputs, half) = (shape[0], shape[1], dtype == .f16)
        return packedCopy(bytes: pk_panels_floats(outputs, inputs) * dtype.size) {
            if case .panels = $0 { true } else { false }
        } pack: { buffer in
            let source = UnsafeSendablePointer(UnsafeMutableRawPointer(mutating: bytes.base).assumingMemoryBound(to: UInt8.self))
            let target = UnsafeSendablePointer(buffer.assumingMemoryBound(to: UInt8.self))
            Parallel.forEachChunk((outputs + 15) / 16, minimumChunk: 1) { range in
                pk_panels_pack(source.pointer, half ? 1 : 0, outputs, inputs, target.pointer, range.lowerBound, range.upperBound)
            }
            return .panels
        }
    }

    /// The kept copy if `matches` its layout (nil if another), else a new one of `bytes` bytes that `pack` fills
    /// (returning its layout, or nil when it failed), kept in place of the file's pages.
    private func packedCopy(bytes count: Int, matches: (PackedCopy.Layout) -> Bool,
                            pack: (UnsafeMutableRawPointer) -> PackedCopy.Layout?) -> UnsafeRawPointer? {
        let address = bytes.packedCopy.withLock { copy -> Int in
            if let copy { return matches(copy.layout) ? Int(bitPattern: copy.bytes) : 0 }
            // Aligned to 2 MiB, its whole 2 MiB pages asked to be huge pages (before `pack` first writes them): the
            // packed weights are read once per pass, and with 4 KiB pages every 4 KiB of them cost a TLB miss.
            let huge = 2 << 20
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(4, count), alignment: count >= huge ? huge : 64)
            if count >= huge { _ = madvise(buffer, count / huge * huge, MADV_HUGEPAGE) }
            guard let layout = pack(buffer) else {
                buffer.deallocate()
                return 0
            }
            copy = PackedCopy(layout: layout, bytes: buffer)
            releasePages()
            return Int(bitPattern: buffer)
        }
        return UnsafeRawPointer(bitPattern: address)
    }

    /// Drops this weight's whole pages of the file mapping from memory (madvise DONTNEED on a private read-only file
    /// mapping: the next read maps them from the file again).
    private func releasePages() {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: bytes.base) + page - 1) / page * page
        let end = (Int(bitPattern: bytes.base) + storedBytes) / page * page
        guard page > 0, end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED)
    }

    /// Row `index` of a matrix [rows, d] as float32 (embedding lookups), widened into `target`.
    public func row(_ index: Int, into target: UnsafeMutablePointer<Float>) {
        precondition(rank == 2 && (0..<shape[0]).contains(index), "row \(index) of \(shape)")
        let d = shape[1]
        Self.widen(bytes.base + index * d * dtype.size, dtype: dtype, count: d, into: target)
    }

    /// A float32 copy.
    public func tensor() -> Tensor {
        var data = [Float](repeating: 0, count: count)
        data.withUnsafeMutableBufferPointer { Self.widen(bytes.base, dtype: dtype, count: count, into: $0.baseAddress!) }
        return Tensor(shape: shape, data: data)
    }

    /// Converts `count` stored values to float32 (in parallel for large weights).
    static func widen(_ source: UnsafeRawPointer, dtype: DType, count: Int, into target: UnsafeMutablePointer<Float>) {
        let from = UnsafeSendablePointer(UnsafeMutableRawPointer(mutating: source).assumingMemoryBound(to: UInt8.self))
        let to = UnsafeSendablePointer(target)
        Parallel.forEachChunk(count, minimumChunk: 1 << 18) { range in
            let raw = UnsafeRawPointer(from.pointer)
            switch dtype {
            case .f16, .bf16:
                // Stored at an even offset by construction (entries are checked against whole elements).
                let halves = (raw + 2 * range.lowerBound).assumingMemoryBound(to: UInt16.self)
                if dtype == .f16 {
                    VectorMath.widen(half: halves, into: to.pointer + range.lowerBound, count: range.count)
                } else {
                    VectorMath.widen(bfloat16: halves, into: to.pointer + range.lowerBound, count: range.count)
                }
            case .f32:
                UnsafeMutableRawPointer(to.pointer + range.lowerBound).copyMemory(from: raw + 4 * range.lowerBound, byteCount: 4 * range.count)
            default:
                preconditionFailure("Weight holds only f32, f16 and bf16")
            }
        }
    }
}

/// Reusable float buffers for widened weights: each call takes the smallest free buffer as large as it needs (or grows
/// the largest) and gives it back, so the pages stay resident instead of being faulted in again for every layer.
/// Buffers are at most one per concurrent caller (nested calls included).
final class ScratchBuffers: @unchecked Sendable {
    // Sendable: `free` is only touched under `lock`.
    static let shared = ScratchBuffers()

    private var lock = pthread_mutex_t()
    private var free: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []

    private init() { pthread_mutex_init(&lock, nil) }

    func with<R, E: Error>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(&lock)
        var buffer: (pointer: UnsafeMutablePointer<Float>, capacity: Int)
        // Best fit: the smallest free buffer that holds `count`, else the largest (grown below). Taking the largest
        // for every request let nested calls (a oneDNN convolution holds five buffers at once) grow every buffer to
        // the largest size any of them ever served.
        if let i = free.indices.filter({ free[$0].capacity >= count }).min(by: { free[$0].capacity < free[$1].capacity })
            ?? free.indices.max(by: { free[$0].capacity < free[$1].capacity }) {
            buffer = free.remove(at: i)
        } else {
            buffer = (UnsafeMutablePointer<Float>.allocate(capacity: 1), 1)
        }
        pthread_mutex_unlock(&lock)
        if buffer.capacity < count {
            buffer.pointer.deallocate()
            buffer = (UnsafeMutablePointer<Float>.allocate(capacity: count), count)
        }
        defer {
            pthread_mutex_lock(&lock)
            free.append(buffer)
            pthread_mutex_unlock(&lock)
        }
        return try body(buffer.pointer)
    }
}

extension SafeTensorsFile {
    /// The stored tensor as a `Weight` read from the file's mapping (f32, f16 or bf16; f64 is narrowed to an f32 copy).
    public func weight(_ name: String) throws(WeightError) -> Weight {
        let e = try entry(name)
        switch e.dtype {
        case .f32, .f16, .bf16:
            return Weight(shape: e.shape, dtype: e.dtype, bytes: WeightBytes(mapped: file, offset: dataStart + e.range.lowerBound))
        default:
            return Weight(Tensor(shape: e.shape, data: try floats(name)))
        }
    }
}
