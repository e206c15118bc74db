// PaintsEngine/LineArt: line strength of a drawing, gap-closing region segmentation, and label propagation (nearest
// source, and weakest barrier first).
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
        var line = [Bool](repeating: false, count: n)
        try image.pixels.withUnsafeBufferPointer { (px) throws(ProtocolError) in
            try strength.withUnsafeMutableBufferPointer { (strength) throws(ProtocolError) in
                try line.withUnsafeMutableBufferPointer { (line) throws(ProtocolError) in
                    for y in 0..<image.height {
                        try context.checkCancellation()
                        for i in (y * image.width)..<(y * image.width + image.width) {
                            let o = i * 4
                            let (r, g, b) = (Float(px[o]), Float(px[o + 1]), Float(px[o + 2]))
                            var s = Self.strength(r: r, g: g, b: b, alpha: px[o + 3])
                            if neutralLinesOnly {
                                let chroma = (max(r, g, b) - min(r, g, b)) / 255
                                s *= max(0, 1 - chroma / 0.3)
                            }
                            strength[i] = s
                            line[i] = s > threshold
                        }
                    }
                }
            }
        }
        self.strength = strength
        let barrier = try Self.dilate(line, width: width, height: height, radius: gapClosing, context: context)
        (region, regionCount) = try Self.connectedComponents(open: barrier.map { !$0 }, width: width, height: height,
                                                             context: context)
    }

    /// Line strength of one straight-alpha pixel (channels 0...255): opacity times darkness, `a * (1 - luminance)`
    /// with Rec. 601 luminance, so a dark line on white paper and the same line on a transparent layer read the same.
    @inline(__always)
    static func strength(r: Float, g: Float, b: Float, alpha: UInt8) -> Float {
        let lum = (0.299 * r + 0.587 * g + 0.114 * b) / 255
        return Float(alpha) / 255 * (1 - lum)
    }

    /// Pixels a fill visits between two cancellation checks (a few milliseconds of work).
    static let pollInterval = 1 << 16

    /// Calls `body` with each 4-neighbour of pixel `p` (up, down, left, right) inside a `width`-wide image of `count`
    /// pixels.
    @inline(__always)
    static func forEachNeighbour(of p: Int, width: Int, count: Int, _ body: (Int) -> Void) {
        let x = p % width
        if p >= width { body(p - width) }
        if p + width < count { body(p + width) }
        if x > 0 { body(p - 1) }
        if x + 1 < width { body(p + 1) }
    }

    /// The root of provisional label `a` in a union-find `parent` table, compressing the path on the way.
    @inline(__always)
    static func root(of a: Int32, in parent: UnsafeMutableBufferPointer<Int32>) -> Int32 {
        var root = a
        while parent[Int(root)] != root { root = parent[Int(root)] }
        var x = a
        while parent[Int(x)] != root {
            let next = parent[Int(x)]
            parent[Int(x)] = root
            x = next
        }
        return root
    }

    /// Chessboard dilation by `radius` pixels (separable running max; both passes walk rows, so memory is read in order).
    static func dilate(_ mask: [Bool], width: Int, height: Int, radius: Int, context: JobContext) throws(ProtocolError) -> [Bool] {
        guard radius > 0 else { return mask }
        var horizontal = [Bool](repeating: false, count: mask.count)
        try mask.withUnsafeBufferPointer { (src) throws(ProtocolError) in
            try horizontal.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
                for y in 0..<height {
                    try context.checkCancellation()
                    let row = y * width
                    // Forward pass marks pixels within `radius` after a set pixel; backward pass those before.
                    var last = Int.min / 2  // x of the last set pixel seen from the left
                    for x in 0..<width {
                        if src[row + x] { last = x }
                        dst[row + x] = x - last <= radius
                    }
                    last = Int.max / 2
                    for x in stride(from: width - 1, through: 0, by: -1) {
                        if src[row + x] { last = x }
                        if last - x <= radius { dst[row + x] = true }
                    }
                }
            }
        }
        var out = [Bool](repeating: false, count: mask.count)
        // Per column, the y of the last set pixel above (forward) or below (backward), updated a row at a time.
        var last = [Int](repeating: Int.min / 2, count: width)
        try horizontal.withUnsafeBufferPointer { (src) throws(ProtocolError) in
            try out.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
                try last.withUnsafeMutableBufferPointer { (last) throws(ProtocolError) in
                    for y in 0..<height {
                        try context.checkCancellation()
                        let row = y * width
                        for x in 0..<width {
                            if src[row + x] { last[x] = y }
                            dst[row + x] = y - last[x] <= radius
                        }
                    }
                    for x in 0..<width { last[x] = Int.max / 2 }
                    for y in stride(from: height - 1, through: 0, by: -1) {
                        try context.checkCancellation()
                        let row = y * width
                        for x in 0..<width {
                            if src[row + x] { last[x] = y }
                            if last[x] - y <= radius { dst[row + x] = true }
                        }
                    }
                }
            }
        }
        return out
    }

    /// 4-connected components of `open` pixels, numbered in the order of their first pixel (rows top to bottom);
    /// closed pixels get -1. Two passes over the rows with a union-find of provisional labels.
    static func connectedComponents(open: [Bool], width: Int, height: Int,
                                    context: JobContext) throws(ProtocolError) -> ([Int32], Int) {
        var labels = [Int32](repeating: -1, count: open.count)
        // A new provisional label needs an open pixel whose left neighbour is closed (or which starts a row): at most
        // one per closed pixel, plus one per row.
        var parent = [Int32](repeating: 0, count: (open.count + height) / 2 + 1)
        var count: Int32 = 0
        try open.withUnsafeBufferPointer { (open) throws(ProtocolError) in
            try labels.withUnsafeMutableBufferPointer { (labels) throws(ProtocolError) in
                try parent.withUnsafeMutableBufferPointer { (parent) throws(ProtocolError) in
                    @inline(__always) func find(_ a: Int32) -> Int32 { LineArt.root(of: a, in: parent) }
                    var provisional: Int32 = 0
                    for y in 0..<height {
                        try context.checkCancellation()
                        let row = y * width
                        for x in 0..<width where open[row + x] {
                            let p = row + x
                            let left: Int32 = x > 0 ? labels[p - 1] : -1
                            let up: Int32 = y > 0 ? labels[p - width] : -1
                            if left >= 0 {
                                labels[p] = left
                                if up >= 0 && up != left {
                                    let (a, b) = (find(up), find(left))
                                    if a != b { parent[Int(max(a, b))] = min(a, b) }
                                }
                            } else if up >= 0 {
                                labels[p] = up
                            } else {
                                parent[Int(provisional)] = provisional
                                labels[p] = provisional
                                provisional += 1
                            }
                        }
                    }
                    // Final ids: roots numbered in order of first appearance (a root is the smallest provisional label
                    // of its component, and provisional labels were made in raster order).
                    var final = [Int32](repeating: -1, count: Int(provisional))
                    try final.withUnsafeMutableBufferPointer { (final) throws(ProtocolError) in
                        for y in 0..<height {
                            try context.checkCancellation()
                            let row = y * width
                            for x in 0..<width where labels[row + x] >= 0 {
                                let p = row + x
                                let root = Int(find(labels[p]))
                                if final[root] < 0 {
                                    final[root] = count
                                    count += 1
                                }
                                labels[p] = final[root]
                            }
                        }
                    }
                }
            }
        }
        return (labels, Int(count))
    }

    /// Number of line-strength levels of `weakestBarrierLabels` (strength 0...1 quantised to 0..<levelCount).
    static let levelCount = 64

    /// Barrier level of every pixel for `weakestBarrierLabels`: its line strength quantised to 0..<`levelCount`, and
    /// at least the level of `threshold` in the zone the gap closing grew around the lines (`region` < 0), so a closed
    /// gap holds back colour as a line at the threshold would, and faint lines below the threshold hold back less.
    func barrierLevels(threshold: Float) -> [UInt8] {
        let gapLevel = Self.level(threshold)
        var levels = [UInt8](repeating: 0, count: strength.count)
        strength.withUnsafeBufferPointer { s in
            region.withUnsafeBufferPointer { r in
                levels.withUnsafeMutableBufferPointer { out in
                    for p in 0..<s.count {
                        let level = Self.level(s[p])
                        out[p] = r[p] < 0 ? max(level, gapLevel) : level
                    }
                }
            }
        }
        return levels
    }

    /// A line strength's level: 0...1 rounded to the nearest of `levelCount` steps.
    @inline(__always)
    static func level(_ strength: Float) -> UInt8 {
        let top = Float(levelCount - 1)
        return UInt8(min(top, max(0, strength) * top + 0.5))
    }

    /// Minimax-path labelling (as LazyBrush and Krita's Colorize Mask label a drawing): every pixel reachable from a
    /// labelled pixel takes the label it is least separated from, where a path's separation is the strongest barrier
    /// level it crosses (weakest barrier first), ties going to the nearer label in steps (4-neighbour distance).
    ///
    /// Every pixel with `labels[p] >= 0` is a source; pixels with -1 are filled; unreachable ones stay -1. Sources
    /// marked in `yielding` (the empty outside of a drawing) give way to the others in `open` pixels (those not in a
    /// line or the zone grown around it): they take such a pixel at a level only if no other label reaches it at that
    /// level. So a pocket cut off by closed gaps that is as separated from the outside as from a scribble goes to the
    /// scribble, while lines and grown zones are still shared by distance.
    ///
    /// A bucket queue over levels (Dial's algorithm on the bottleneck order): a pixel is queued once, at the first
    /// level at which a labelled neighbour reaches it, `max(level of that neighbour's queue, its own level)`, first in
    /// first out within a level; a yielding label's claims on open pixels wait in a second queue per level, run after
    /// the first is empty. Lines are thus filled from both sides at once and meet in their middle.
    ///
    /// Polls `context` every row while setting up and every `pollInterval` pixels of the fill.
    static func weakestBarrierLabels(labels: inout [Int32], levels: [UInt8], yielding: [Bool]? = nil, open: [Bool]? = nil,
                                     width: Int, height: Int, context: JobContext) throws(ProtocolError) {
        let n = width * height
        // Per pixel: level in the low 6 bits, `openBit`, and `yieldingBit` once a yielding label holds it. A pixel a
        // yielding label has claimed but not yet taken holds the label -4 - label.
        let openBit: UInt8 = 0x40, yieldingBit: UInt8 = 0x80, levelBits: UInt8 = 0x3F
        var flags = levels
        // First-in first-out queues per level: the pixels to spread from, and the yielding labels' waiting claims.
        let queues = UnsafeMutablePointer<PixelQueue>.allocate(capacity: 2 * levelCount)
        queues.initialize(repeating: PixelQueue(), count: 2 * levelCount)
        defer {
            for k in 0..<(2 * levelCount) { queues[k].release() }
            queues.deallocate()
        }
        let waiting = queues + levelCount
        let levelLimit = UInt8(levelCount - 1)
        let yielding = yielding ?? [], open = open ?? []
        try labels.withUnsafeMutableBufferPointer { (lab) throws(ProtocolError) in
            try flags.withUnsafeMutableBufferPointer { (lev) throws(ProtocolError) in
                for y in 0..<height {
                    try context.checkCancellation()
                    for p in (y * width)..<(y * width + width) {
                        var f = min(lev[p], levelLimit)
                        if !open.isEmpty && open[p] { f |= openBit }
                        if lab[p] >= 0 && !yielding.isEmpty && yielding[p] { f |= yieldingBit }
                        lev[p] = f
                    }
                }
                // Sources in raster order; only those next to an unlabelled pixel have work to do.
                for y in 0..<height {
                    try context.checkCancellation()
                    let row = y * width
                    for x in 0..<width where lab[row + x] >= 0 {
                        let p = row + x
                        if (y > 0 && lab[p - width] == -1) || (y + 1 < height && lab[p + width] == -1)
                            || (x > 0 && lab[p - 1] == -1) || (x + 1 < width && lab[p + 1] == -1) {
                            queues[0].append(Int32(p))
                        }
                    }
                }
                /// Hands p's label on to its unlabelled neighbours.
                @inline(__always) func spread(_ p: Int, at level: Int) {
                    let label = lab[p]
                    let yields = lev[p] & yieldingBit != 0
                    @inline(__always) func reach(_ q: Int) {
                        let held = lab[q]
                        let at = max(level, Int(lev[q] & levelBits))
                        if held == -1 {
                            if yields && lev[q] & openBit != 0 {
                                lab[q] = -4 - label
                                waiting[at].append(Int32(q))
                            } else {
                                lab[q] = label
                                if yields { lev[q] |= yieldingBit }
                                queues[at].append(Int32(q))
                            }
                        } else if held <= -4 && !yields {
                            lab[q] = label  // its waiting entry will find it taken
                            queues[at].append(Int32(q))
                        }
                    }
                    let x = p % width
                    if p >= width { reach(p - width) }
                    if p + width < n { reach(p + width) }
                    if x > 0 { reach(p - 1) }
                    if x + 1 < width { reach(p + 1) }
                }
                var visited = 0
                for level in 0..<levelCount {
                    var done = 0, waited = 0
                    while true {
                        while done < queues[level].count {
                            let p = Int(queues[level][done])
                            done += 1
                            visited += 1
                            if visited % pollInterval == 0 { try context.checkCancellation() }
                            spread(p, at: level)
                        }
                        // No other label reaches this level any more: the yielding ones take what they wait for, which
                        // may queue more pixels at this level.
                        guard waited < waiting[level].count else { break }
                        while waited < waiting[level].count {
                            let q = Int(waiting[level][waited])
                            waited += 1
                            guard lab[q] <= -4 else { continue }
                            visited += 1
                            if visited % pollInterval == 0 { try context.checkCancellation() }
                            lab[q] = -4 - lab[q]
                            lev[q] |= yieldingBit
                            spread(q, at: level)
                        }
                    }
                    queues[level].release()
                    waiting[level].release()
                }
            }
        }
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

/// A growable list of pixel indices in manually managed memory, for the fill's inner loop (no copy-on-write or
/// exclusivity checks). `release` frees it; it can be used again afterwards.
struct PixelQueue {
    private var base: UnsafeMutablePointer<Int32>?
    private(set) var count = 0
    private var capacity = 0

    init() {}

    @inline(__always)
    subscript(i: Int) -> Int32 { base.unsafelyUnwrapped[i] }

    @inline(__always)
    mutating func append(_ value: Int32) {
        if count == capacity { grow() }
        base.unsafelyUnwrapped[count] = value
        count += 1
    }

    private mutating func grow() {
        let bigger = max(1024, capacity * 2)
        let fresh = UnsafeMutablePointer<Int32>.allocate(capacity: bigger)
        if let base {
            fresh.update(from: base, count: count)
            base.deallocate()
        }
        base = fresh
        capacity = bigger
    }

    mutating func release() {
        base?.deallocate()
        base = nil
        count = 0
        capacity = 0
    }
}
