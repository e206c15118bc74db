// PaintsTagger/TagLabels: a tagger's selected_tags.csv and the prompt made from label probabilities.
// Matches: Paints-UNDO wd14tagger.py `default_interrogator` (thresholds, order, escaping, underscores).
import Foundation
import PaintsDiffusion
import PaintsTensor

/// Labels of a WD tagger, in the CSV's order (tag_id, name, category, count; ratings 9, general 0, characters 4).
public struct TagLabels: Sendable {
    public enum Category: Int, Sendable {
        case general = 0
        case character = 4
        case rating = 9
    }

    public let names: [String]
    public let categories: [Int]

    public init(names: [String], categories: [Int]) {
        self.names = names
        self.categories = categories
    }

    public init(path: String) throws(ModelError) {
        // Read only as a regular file of at most 16 MiB (a named pipe would block, a device never end).
        guard let text = RegularFile.text(path) else { throw .configuration("cannot read \(path) (a regular UTF-8 file of at most 16 MiB)") }
        try self.init(csv: text, path: path)
    }

    /// Reads the CSV. Names never contain commas in the published files, but quoted fields are honoured.
    public init(csv text: String, path: String = "selected_tags.csv") throws(ModelError) {
        var lines = text.split(whereSeparator: \.isNewline).map(String.init)
        guard let header = lines.first.map(Self.fields), let nameColumn = header.firstIndex(of: "name"),
              let categoryColumn = header.firstIndex(of: "category")
        else { throw .configuration("\(path): the header must name the columns name and category") }
        lines.removeFirst()
        var names: [String] = [], categories: [Int] = []
        for (i, line) in lines.enumerated() where !line.isEmpty {
            let row = Self.fields(line)
            guard row.count > max(nameColumn, categoryColumn), let category = Int(row[categoryColumn]) else {
                throw .configuration("\(path): line \(i + 2) is not name, category")
            }
            names.append(row[nameColumn])
            categories.append(category)
        }
        self.init(names: names, categories: categories)
    }

    static func fields(_ line: String) -> [String] {
        var out: [String] = [], current = "", quoted = false
        var chars = line.makeIterator()
        while let ch = chars.next() {
            if ch == "\"" { quoted.toggle() } else if ch == "," && !quoted {
                out.append(current)
                current = ""
            } else { current.append(ch) }
        }
        out.append(current)
        return out
    }

    public struct Thresholds: Sendable, Equatable {
        public var general: Float = 0.35
        public var character: Float = 0.85
        public init(general: Float = 0.35, character: Float = 0.85) {
            self.general = general
            self.character = character
        }
    }

    /// One kept tag.
    public struct Tag: Sendable, Equatable {
        public var name: String
        public var category: Int
        public var probability: Float
    }

    /// Tags over their thresholds as the reference picks them: characters (from the first category-4 row on) then
    /// general tags (from the first category-0 row up to the first character row), each in CSV order; names listed in
    /// `excluding` (raw names, compared lowercased) left out.
    public func tags(_ probabilities: [Float], thresholds: Thresholds = Thresholds(), excluding: Set<String> = []) -> [Tag] {
        precondition(probabilities.count == names.count, "\(probabilities.count) probabilities for \(names.count) labels")
        let firstGeneral = categories.firstIndex(of: Category.general.rawValue)
        let firstCharacter = categories.firstIndex(of: Category.character.rawValue)
        func pick(_ range: Range<Int>, over threshold: Float) -> [Tag] {
            range.compactMap { i in
                probabilities[i] > threshold && !excluding.contains(names[i].lowercased())
                    ? Tag(name: names[i], category: categories[i], probability: probabilities[i]) : nil
            }
        }
        let characters = firstCharacter.map { pick($0..<names.count, over: thresholds.character) } ?? []
        let general = firstGeneral.map { pick($0..<(firstCharacter ?? names.count), over: thresholds.general) } ?? []
        return characters + general
    }

    /// Rating labels (category 9) with their probabilities, in CSV order.
    public func ratings(_ probabilities: [Float]) -> [(name: String, probability: Float)] {
        names.indices.filter { categories[$0] == Category.rating.rawValue }.map { (names[$0], probabilities[$0]) }
    }

    /// The prompt: names joined with ", ", parentheses escaped (prompt weighting would read them), underscores as spaces.
    public static func prompt(_ tags: [Tag]) -> String {
        tags.map { $0.name.replacingOccurrences(of: "(", with: "\\(").replacingOccurrences(of: ")", with: "\\)") }
            .joined(separator: ", ").replacingOccurrences(of: "_", with: " ")
    }
}
