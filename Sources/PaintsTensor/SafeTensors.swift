// PaintsTensor/SafeTensors: memory-mapped, fully validated reading of .safetensors files, and writing them.
import Foundation
import Glibc

/// Element types of safetensors files this project reads.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case f64 = "F64"
    case i64 = "I64"
    case i32 = "I32"
    case i8 = "I8"
    case u8 = "U8"
    case bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16: 2
        case .i8, .u8, .bool: 1
        }
    }
}

/// Why weights could not be read. Every case names the file or tensor.
public enum WeightError: Error, Sendable, Equatable, CustomStringConvertible {
    case io(path: String, message: String)
    case truncated(path: String, message: String)
    case badHeader(path: String, message: String)
    case badEntry(path: String, tensor: String, message: String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], actual: [Int])
    case unsupportedDType(tensor: String, dtype: String)
    case badConfig(path: String, message: String)

    public var description: String {
        switch self {
        case .io(let p, let m): "\(p): \(m)"
        case .truncated(let p, let m): "\(p): truncated: \(m)"
        case .badHeader(let p, let m): "\(p): bad safetensors header: \(m)"
        case .badEntry(let p, let t, let m): "\(p): tensor \(t): \(m)"
        case .missingTensor(let t): "missing tensor \(t)"
        case .shapeMismatch(let t, let e, let a): "tensor \(t) has shape \(a), expected \(e)"
        case .unsupportedDType(let t, let d): "tensor \(t) has dtype \(d), which cannot be read as float"
        case .badConfig(let p, let m): "\(p): \(m)"
        }
    }
}

/// One tensor's place in a file.
public struct TensorEntry: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range inside the data section.
    public var range: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A read-only memory mapping of a file; unmapped when the last reference goes.
final class MappedFile: @unchecked Sendable {
    // Sendable: the mapping is PROT_READ and never changes after init.
    let base: UnsafeRawPointer
    let size: Int

    /// Maps the regular file `path`; a named pipe, device or socket is refused without blocking (`RegularFile`).
    init(path: String) throws(WeightError) {
        let (fd, fileSize) = try RegularFile.open(path)
        defer { close(fd) }
        size = fileSize
        guard size > 0 else { throw .truncated(path: path, message: "the file is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .io(path: path, message: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// A .safetensors file, memory-mapped and validated: every entry's dtype, shape and byte range is checked against the
/// file before any tensor is read, so a truncated or hostile file is a `WeightError`, never an out-of-bounds read.
public struct SafeTensorsFile: Sendable {
    public let path: String
    public let entries: [String: TensorEntry]
    public let metadata: [String: String]
    let file: MappedFile
    let dataStart: Int

    /// The largest header accepted: 16 MiB. The format's reference reader allows 100 MB, but a model's header is
    /// kilobytes (an SD1.5 single-file checkpoint's ~1,100 tensors take about 150 KB), and parsing tens of MB of JSON
    /// costs seconds and gigabytes; 16 MiB leaves two orders of magnitude of room.
    public static let maxHeaderBytes = 16 << 20

    public init(path: String) throws(WeightError) {
        self.path = path
        file = try MappedFile(path: path)
        guard file.size >= 8 else { throw .truncated(path: path, message: "\(file.size) bytes, less than the 8-byte header length") }
        let headerLength = Int(file.base.loadUnaligned(as: UInt64.self).littleEndian.clamped(to: UInt64(Int.max)))
        guard headerLength <= Self.maxHeaderBytes else {
            throw .badHeader(path: path, message: "header length \(headerLength) bytes exceeds the limit of \(Self.maxHeaderBytes) bytes (16 MiB; model headers are kilobytes)")
        }
        guard 8 + headerLength <= file.size else {
            throw .truncated(path: path, message: "header of \(headerLength) bytes but the file has \(file.size)")
        }
        dataStart = 8 + headerLength
        let dataSize = file.size - dataStart
        let headerData = Data(bytes: file.base + 8, count: headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let object = json as? [String: Any] else {
            throw .badHeader(path: path, message: "the header is not a JSON object")
        }
        var entries: [String: TensorEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw .badHeader(path: path, message: "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw .badHeader(path: path, message: "__metadata__.\(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            entries[name] = try Self.entry(name, value, path: path, dataSize: dataSize)
        }
        // Entries must not overlap (the format requires it; overlapping ones would alias).
        let sorted = entries.values.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.range.lowerBound < a.range.upperBound {
            throw .badEntry(path: path, tensor: b.name, message: "its bytes overlap those of \(a.name)")
        }
        self.entries = entries
        self.metadata = metadata
    }

    private static func entry(_ name: String, _ value: Any, path: String, dataSize: Int) throws(WeightError) -> TensorEntry {
        func bad(_ m: String) -> WeightError { .badEntry(path: path, tensor: name, message: m) }
        guard let o = value as? [String: Any] else { throw bad("entry is not an object") }
        guard let dtypeName = o["dtype"] as? String else { throw bad("no dtype") }
        guard let dtype = DType(rawValue: dtypeName) else { throw bad("unknown dtype \(dtypeName)") }
        guard let shapeValues = o["shape"] as? [Any] else { throw bad("no shape") }
        var shape: [Int] = []
        var count = 1
        for v in shapeValues {
            guard let n = v as? NSNumber, let d = Int(exactly: n.doubleValue), d >= 0 else { throw bad("shape \(shapeValues) is not a list of sizes") }
            shape.append(d)
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw bad("shape \(shape) overflows") }
            count = product
        }
        guard let offsets = o["data_offsets"] as? [Any], offsets.count == 2,
              let begin = (offsets[0] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }),
              let end = (offsets[1] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }),
              0 <= begin, begin <= end
        else { throw bad("data_offsets must be [begin, end] with 0 <= begin <= end") }
        guard end <= dataSize else {
            throw .truncated(path: path, message: "tensor \(name) ends at byte \(end) of a \(dataSize)-byte data section")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, bytes == end - begin else {
            throw bad("\(end - begin) bytes for shape \(shape) of \(dtypeName) (\(overflow ? "overflow" : "\(bytes)") expected)")
        }
        return TensorEntry(name: name, dtype: dtype, shape: shape, range: begin..<end)
    }

    public var names: [String] { entries.keys.sorted() }

    public func entry(_ name: String) throws(WeightError) -> TensorEntry {
        guard let e = entries[name] else { throw .missingTensor(name) }
        return e
    }

    /// The tensor's elements converted to Float (from f32, f16, bf16 or f64).
    public func floats(_ name: String) throws(WeightError) -> [Float] {
        let e = try entry(name)
        switch e.dtype {
        case .f32, .f16, .bf16: return try weight(name).tensor().data
        case .f64:
            let start = file.base + dataStart + e.range.lowerBound
            return (0..<e.count).map { Float(Double(bitPattern: start.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian)) }
        default: throw .unsupportedDType(tensor: name, dtype: e.dtype.rawValue)
        }
    }

    /// Bytes of all tensor data (what the file's weights occupy once read, in their stored dtype).
    public var storedBytes: Int { entries.values.reduce(0) { $0 + $1.range.count } }

    /// The tensor as Float, checking its shape.
    public func floats(_ name: String, shape: [Int]) throws(WeightError) -> [Float] {
        let e = try entry(name)
        guard e.shape == shape else { throw .shapeMismatch(tensor: name, expected: shape, actual: e.shape) }
        return try floats(name)
    }

    /// Integer tensors (token ids) as Int.
    public func integers(_ name: String) throws(WeightError) -> [Int] {
        let e = try entry(name)
        let start = file.base + dataStart + e.range.lowerBound
        switch e.dtype {
        case .i64: return (0..<e.count).map { Int(Int64(littleEndian: start.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
        case .i32: return (0..<e.count).map { Int(Int32(littleEndian: start.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
        default: throw .unsupportedDType(tensor: name, dtype: e.dtype.rawValue)
        }
    }
}

/// Writes .safetensors files (f32, f16 or bf16 data), header entries in name order.
public enum SafeTensorsWriter {
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public var dtype: DType

        public init(_ name: String, shape: [Int], values: [Float], dtype: DType = .f32) {
            self.name = name
            self.shape = shape
            self.values = values
            self.dtype = dtype
        }
    }

    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) throws(WeightError) -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for t in tensors.sorted(by: { $0.name < $1.name }) {
            guard t.values.count == t.shape.reduce(1, *) else {
                throw .shapeMismatch(tensor: t.name, expected: t.shape, actual: [t.values.count])
            }
            let begin = body.count
            switch t.dtype {
            case .f32: for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            case .f16: for v in t.values { withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            case .bf16:
                // Rounded to nearest even (finite values; a NaN keeps a quiet NaN's top bits).
                for v in t.values {
                    let bits = v.bitPattern
                    let rounded = v.isNaN ? UInt16(bits >> 16) | 0x40 : UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                    withUnsafeBytes(of: rounded.littleEndian) { body.append(contentsOf: $0) }
                }
            default: throw .unsupportedDType(tensor: t.name, dtype: t.dtype.rawValue)
            }
            header[t.name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [begin, body.count]]
        }
        guard var json = try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) else {
            throw .badHeader(path: "(writing)", message: "header not serializable")
        }
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + body
    }

    public static func write(_ tensors: [Tensor], to path: String, metadata: [String: String] = [:]) throws(WeightError) {
        let data = try encode(tensors, metadata: metadata)
        do { try data.write(to: URL(fileURLWithPath: path)) } catch { throw .io(path: path, message: "\(error)") }
    }
}

extension UInt64 {
    fileprivate func clamped(to limit: UInt64) -> UInt64 { Swift.min(self, limit) }
}

extension SafeTensorsFile {
    /// A stored tensor as a float32 `Tensor` of its stored shape.
    public func tensor(_ name: String) throws(WeightError) -> Tensor {
        let e = try entry(name)
        return Tensor(shape: e.shape, data: try floats(name))
    }
}
