// PaintsTestSupport/HostileFiles: building the files the hostile-input tests feed the loaders (safetensors headers
// rewritten, named pipes), and the inputs `make fuzz` saved as regressions (Tests/Fixtures/fuzz/regressions/).
import Foundation
import Glibc
import PaintsTensor

public enum HostileFiles {
    /// A safetensors file with `header` as its JSON text (padded to 8 bytes) and `data` after it; `lengthField`
    /// overrides the stated header length.
    public static func raw(_ header: String, data: Data = Data(), lengthField: UInt64? = nil) -> Data {
        var json = Data(header.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: (lengthField ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
        return out + json + data
    }

    /// The header (parsed) and data section of the safetensors file at `path`.
    public static func split(_ path: String) throws -> (header: [String: Any], data: Data) {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        guard let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return (header, bytes.subdata(in: (8 + n)..<bytes.count))
    }

    /// A header and data section as a file.
    public static func join(_ header: [String: Any], _ data: Data) throws -> Data {
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        return raw(String(decoding: json, as: UTF8.self), data: data)
    }

    /// Writes to `destination` the safetensors file at `source` with its header changed by `edit` (the data section
    /// kept, so entries that still point at their bytes stay valid).
    public static func rewrite(_ source: String, to destination: String, _ edit: (inout [String: Any]) -> Void) throws {
        var (header, data) = try split(source)
        edit(&header)
        try join(header, data).write(to: URL(fileURLWithPath: destination))
    }

    /// A named pipe at `path`.
    public static func makeFIFO(_ path: String) -> Bool { mkfifo(path, 0o600) == 0 }

    /// Opens the FIFO at `path` for writing without blocking, so that a reader stuck in open(2) (the bug the FIFO
    /// tests catch) is released and the test process can end.
    public static func releaseReaders(_ path: String) {
        let fd = open(path, O_WRONLY | O_NONBLOCK)
        if fd >= 0 { close(fd) }
    }
}

/// Runs `body` on another thread; true when it returned within `seconds`. The deadline is generous (30 s for work
/// of milliseconds): what is checked is that the call returns at all, not how fast.
public func finishes(within seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        body()
        done.signal()
    }
    return done.wait(timeout: .now() + seconds) == .success
}

/// The inputs `make fuzz` saved under Tests/Fixtures/fuzz/regressions/<target>/ because they once killed or stalled
/// the code they were fed to, and how to turn each back into files.
public enum FuzzRegressions {
    public static func files(_ target: String) -> [String] {
        let dir = Repository.path("Tests/Fixtures/fuzz/regressions/" + target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    /// The bytes a saved input stands for: the file itself, or, for `*.patch.json` ({"seed": path, "set": {key:
    /// entry}, "remove": [key]}), the seed file with those header entries changed.
    public static func bytes(_ path: String) throws -> Data {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard path.hasSuffix(".patch.json") else { return data }
        guard let patch = try JSONSerialization.jsonObject(with: data) as? [String: Any], let seed = patch["seed"] as? String else {
            throw CocoaError(.fileReadCorruptFile)
        }
        var (header, body) = try HostileFiles.split(Repository.path(seed))
        for key in patch["remove"] as? [String] ?? [] { header[key] = nil }
        for (key, value) in patch["set"] as? [String: Any] ?? [:] { header[key] = value }
        return try HostileFiles.join(header, body)
    }

    /// For a folder input (`<id>__<kind>%<path with % for />[.patch.json]`): its model kind and the file it replaces.
    public static func folderInput(_ path: String) -> (kind: String, relative: String)? {
        var name = (path as NSString).lastPathComponent
        if name.hasSuffix(".patch.json") { name = String(name.dropLast(".patch.json".count)) }
        guard let r = name.range(of: "__") else { return nil }
        let parts = name[r.upperBound...].split(separator: "%").map(String.init)
        guard parts.count >= 2 else { return nil }
        return (parts[0], parts.dropFirst().joined(separator: "/"))
    }

    /// Builds the model folder of `kind` (Tests/Fixtures/fuzz/folder/models.json: every file linked to the fixtures)
    /// under `directory`, with `relative` holding `bytes`; returns the folder.
    public static func materialize(kind: String, relative: String, bytes: Data, directory: String) throws -> String {
        let manifest = try JSONSerialization.jsonObject(with: Repository.data("Tests/Fixtures/fuzz/folder/models.json"))
        guard let files = (manifest as? [String: [String: String]])?[kind] else { throw CocoaError(.fileNoSuchFile) }
        let fm = FileManager.default, folder = directory + "/" + kind
        try? fm.removeItem(atPath: folder)
        for (path, source) in files {
            let target = folder + "/" + path
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if path == relative {
                try bytes.write(to: URL(fileURLWithPath: target))
            } else {
                try fm.createSymbolicLink(atPath: target, withDestinationPath: Repository.path(source))
            }
        }
        return folder
    }
}
