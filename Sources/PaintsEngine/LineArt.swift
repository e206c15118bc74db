// PaintsEngine/LineArt: line strength of a drawing, gap-closing region segmentation, and label propagation.
import PaintsProtocol
import PaintsRaster

/// Per-pixel line strength of a drawing and the regions its lines enclose.
struct LineArt {
    let width: Int
    let height: Int
    /// How much each pixel is line, 0...1: alpha * (1 - luminance), so dark lines on white and lines on a transparent
    /// layer read the same.
    let strength: [Float]
    /// Region id of each pixel; -1 marks the barrier zone (lines grown by the gap-closing radius).
    let region: [Int32]
    let regionCount: Int

    /// - Parameters:
    ///   - threshold: strength above which a pixel is line.
    ///   - gapClosing: lines are grown by this many pixels before regions are found, so gaps up to about twice this
    ///     width do not let regions leak into each other.
    ///   - neutralLinesOnly: for finished, coloured pictures: only dark pixels of little chroma count as line, so a
    ///     dark blue fill is not mistaken for ink.
    ///   - context: polled for cancellation every row and every `pollInterval` pixels of a fill.
    init(_ image: RGBAImage, threshold: Float, gapClosing: Int, neutralLinesOnly: Bool = false,
         context: JobContext) throws(ProtocolError) {
        width = image.width
        height = image.height
        let n = image.pixelCount
        var strength = [Float](repeating: 0, count: n)
        try image.pixels.withUnsafeBufferPointer { (px) throws(ProtocolError) in
            for i in 0..<n {
                if i % image.width == 0 { try context.checkCancellation() }
                let o = i * 4
                let (r, g, b) = (Float(px[o]), Float(px[o + 1]), Float(px[o + 2]))
                let lum = (0.299 * r + 0.587 * g + 0.114 * b) / 255
                var s = Float(px[o + 3]) / 255 * (1 - lum)
                if neutralLinesOnly {
                    let chroma = (max(r, g, b) - min(r, g, b)) / 255
                    s *= max(0, 1 - chroma / 0.3)
                }
                strength[i] = s
            }
        }
        self.strength = strength
        let barrier = try Self.dilate(strength.map { $0 > threshold }, width: width, height: height, radius: gapClosing,
                                      context: context)
        (region, regionCount) = try Self.connectedComponents(open: barrier.map { !$0 }, width: width, height: height,
                                                             context: context)
    }

    /// Pixels a fill visits between two cancellation checks (a few milliseconds of work).
    static let pollInterval = 1 << 16

    /// Chessboard dilation by `radius` pixels (separable running max).
    static func dilate(_ mask: [Bool], width: Int, height: Int, radius: Int, context: JobContext) throws(ProtocolError) -> [Bool] {
        guard radius > 0 else { return mask }
        var horizontal = [Bool](repeating: false, count: mask.count)
        for y in 0..<height {
            try context.checkCancellation()
            var last = Int.min / 2  // x of the last set pixel seen from the left
            let row = y * width
            // Forward pass marks pixels within `radius` after a set pixel; backward pass those before.
            for x in 0..<width {
                if mask[row + x] { last = x }
                if x - last <= radius { horizontal[row + x] = true }
            }
            last = Int.max / 2
            for x in stride(from: width - 1, through: 0, by: -1) {
                if mask[row + x] { last = x }
                if last - x <= radius { horizontal[row + x] = true }
            }
        }
        var out = [Bool](repeating: false, count: mask.count)
        for x in 0..<width {
            try context.checkCancellation()
            var last = Int.min / 2
            for y in 0..<height {
                if horizontal[y * width + x] { last = y }
                if y - last <= radius { out[y * width + x] = true }
            }
            last = Int.max / 2
            for y in stride(from: height - 1, through: 0, by: -1) {
                if horizontal[y * width + x] { last = y }
                if last - y <= radius { out[y * width + x] = true }
            }
        }
        return out
    }

    /// 4-connected components of `open` pixels; closed pixels get -1.
    static func connectedComponents(open: [Bool], width: Int, height: Int,
                                    context: JobContext) throws(ProtocolError) -> ([Int32], Int) {
        var labels = [Int32](repeating: -1, count: open.count)
        var count: Int32 = 0
        var stack: [Int] = []
        var visited = 0
        for start in 0..<open.count where open[start] && labels[start] < 0 {
            labels[start] = count
            stack.append(start)
            while let p = stack.popLast() {
                visited += 1
                if visited % pollInterval == 0 { try context.checkCancellation() }
                for k in 0..<4 {
                    let q = neighbour(p, k, width: width, count: open.count)
                    if q >= 0 && open[q] && labels[q] < 0 {
                        labels[q] = count
                        stack.append(q)
                    }
                }
            }
            count += 1
        }
        return (labels, Int(count))
    }

    /// Multi-source shortest-path labelling with small integer step costs (Dial's bucket queue).
    ///
    /// Every pixel with `label >= 0` is a source at distance 0. A label moves from pixel p to neighbour q when `canEnter(p, q)`,
    /// paying `cost[q]` (1...maxCost; a larger cost would be taken modulo the queue and break the order). Each reached pixel takes the label of its nearest source.
    static func propagate(labels: inout [Int32], width: Int, height: Int, cost: [UInt8], maxCost: Int,
                          context: JobContext, canEnter: (Int, Int) -> Bool) throws(ProtocolError) {
        let n = labels.count
        var distance = [Int32](repeating: Int32.max, count: n)
        let bucketCount = maxCost + 1
        var buckets = [[Int32]](repeating: [], count: bucketCount)
        var pending = 0
        for p in 0..<n where labels[p] >= 0 {
            distance[p] = 0
            buckets[0].append(Int32(p))
            pending += 1
        }
        var current: Int32 = 0, visited = 0
        while pending > 0 {
            let slot = Int(current) % bucketCount
            let bucket = buckets[slot]
            buckets[slot] = []
            var index = 0
            while index < bucket.count {
                let p = Int(bucket[index])
                index += 1
                pending -= 1
                visited += 1
                if visited % pollInterval == 0 { try context.checkCancellation() }
                if distance[p] != current { continue }  // a stale entry; p was reached cheaper
                let label = labels[p]
                for k in 0..<4 {
                    let q = neighbour(p, k, width: width, count: n)
                    guard q >= 0 else { continue }
                    let d = current + Int32(cost[q])
                    if d < distance[q] && canEnter(p, q) {
                        distance[q] = d
                        labels[q] = label
                        buckets[Int(d) % bucketCount].append(Int32(q))
                        pending += 1
                    }
                }
            }
            current += 1
        }
    }

    /// The k-th 4-neighbour of pixel p (up, down, left, right), or -1 outside the image.
    @inline(__always)
    static func neighbour(_ p: Int, _ k: Int, width: Int, count: Int) -> Int {
        switch k {
        case 0: return p >= width ? p - width : -1
        case 1: return p + width < count ? p + width : -1
        case 2: return p % width > 0 ? p - 1 : -1
        default: return p % width < width - 1 ? p + 1 : -1
        }
    }
}
