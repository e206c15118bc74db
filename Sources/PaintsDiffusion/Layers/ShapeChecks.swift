// PaintsDiffusion/Layers/ShapeChecks: what model constructors check of the shapes they read, so that a model built
// from any file either fails to load with a typed error or runs without an array trap: every residual sum adds equal
// shapes, every index stays inside its tensor, every "same size" convolution keeps the size.
import Foundation
import PaintsTensor

/// Throws `ModelError.configuration(message)` unless `condition` holds.
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(ModelError) {
    guard condition else { throw .configuration(message()) }
}

/// Reads the integer `value` of a JSON configuration as an Int inside `range`, without trapping on fractions or huge
/// values; nil when it is absent, null or not a number (as the readers did before: such members take their defaults).
func configurationInt(_ value: Any?, _ key: String, in range: ClosedRange<Int>, path: String) throws(ModelError) -> Int? {
    guard let number = value as? NSNumber else { return nil }
    guard let n = Int(exactly: number.doubleValue), range.contains(n) else {
        throw .configuration("\(path): \(key) must be an integer in \(range.lowerBound)...\(range.upperBound), got \(number)")
    }
    return n
}

/// The integers of a JSON list (each inside `range`); nil when `value` is absent or not a list.
func configurationInts(_ value: Any?, _ key: String, in range: ClosedRange<Int>, path: String) throws(ModelError) -> [Int]? {
    guard let list = value as? [Any] else { return nil }
    var out: [Int] = []
    for item in list {
        guard let n = try configurationInt(item, key, in: range, path: path) else { throw .configuration("\(path): \(key) has an entry that is not a number") }
        out.append(n)
    }
    return out
}

extension Conv2d {
    /// Whether the output has the input's height and width: a square odd kernel, stride 1, padding half the kernel.
    var keepsSize: Bool { weight.shape[2] == weight.shape[3] && weight.shape[2] % 2 == 1 && stride == 1 && padding == weight.shape[2] / 2 }

    /// Throws unless this is a size-keeping convolution from `inputs` channels.
    func requireSameSize(from inputs: Int, _ name: String) throws(ModelError) {
        try require(keepsSize, "\(name): a \(weight.shape[2])x\(weight.shape[3]) kernel does not keep the feature map's size (odd square kernels do)")
        try require(inChannels == inputs, "\(name): takes \(inChannels) channels, gets \(inputs)")
    }
}

extension GroupNorm {
    var channels: Int { weight.shape[0] }
}

extension LayerNorm {
    var channels: Int { weight.shape[0] }
}
