// Files no model writer makes: named pipes and devices under a weights file's name, headers past the size cap,
// offsets and shapes whose arithmetic overflows, and every input the fuzzer once saved (`make fuzz`). Each is a typed
// WeightError, read without blocking; none may trap.
import Foundation
import Glibc
import PaintsTensor
import PaintsTestSupport
import Synchronization
import Testing

@Suite struct HostileFileTests {
    @Test func aNamedPipeIsRefusedWithoutBlocking() throws {
        let dir = try TemporaryDirectory.make(prefix: "fifo")
        let path = dir + "/p.safetensors"
        #expect(HostileFiles.makeFIFO(path))
        defer { HostileFiles.releaseReaders(path) }
        let outcome = Mutex<WeightError?>(nil)
        let returned = finishes(within: 30) {
            do throws(WeightError) { _ = try SafeTensorsFile(path: path) } catch { outcome.withLock { $0 = error } }
        }
        #expect(returned, "opening a named pipe blocked")
        guard case .io(_, let message)? = outcome.withLock({ $0 }) else {
            Issue.record("expected an io error, got \(String(describing: outcome.withLock { $0 }))")
            return
        }
        #expect(message.contains("not a regular file"))
        #expect(!RegularFile.isRegular(path))
        #expect(finishes(within: 30) { _ = try? RegularFile.read(path) })
    }

    @Test func devicesAndDirectoriesAreRefused() throws {
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: "/dev/zero") }
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: "/dev/null") }
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: try TemporaryDirectory.make(prefix: "dir")) }
        #expect(throws: WeightError.self) { try RegularFile.read("/dev/zero") }
        #expect(RegularFile.jsonObject("/dev/zero") == nil)
    }

    @Test func aHeaderOverTheCapIsRefusedBeforeParsing() throws {
        #expect(SafeTensorsFile.maxHeaderBytes == 16 << 20)
        let dir = try TemporaryDirectory.make(prefix: "bigheader")
        // A real header one byte over the cap: valid JSON (one object and spaces), so only the cap refuses it.
        let over = dir + "/over.safetensors"
        let text = "{}" + String(repeating: " ", count: SafeTensorsFile.maxHeaderBytes - 1)
        try HostileFiles.raw(text).write(to: URL(fileURLWithPath: over))
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: over) }
        do { _ = try SafeTensorsFile(path: over) } catch {
            guard case .badHeader(_, let message) = error else { Issue.record("expected badHeader, got \(error)"); return }
            #expect(message.contains("16 MiB"))
        }
        // At the cap it is read.
        let at = dir + "/at.safetensors"
        try HostileFiles.raw("{}" + String(repeating: " ", count: SafeTensorsFile.maxHeaderBytes - 8)).write(to: URL(fileURLWithPath: at))
        #expect(try SafeTensorsFile(path: at).entries.isEmpty)
        // A length field far past the file and the cap.
        let lying = dir + "/lying.safetensors"
        try HostileFiles.raw("{}", lengthField: .max).write(to: URL(fileURLWithPath: lying))
        #expect(throws: WeightError.self) { try SafeTensorsFile(path: lying) }
    }

    @Test func offsetsAndShapesAreCheckedWithoutOverflow() throws {
        let dir = try TemporaryDirectory.make(prefix: "offsets")
        let cases = [
            #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#,   // product overflows
            #"{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#,      // bytes overflow
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1e30]}}"#,                      // not an Int
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775807,4]}}"#,       // begin after end
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#,
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,                       // past the data
            #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,4]}}"#,
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
            #"[1,2]"#, #"{"a":3}"#, #"{"__metadata__":[]}"#,
            String(repeating: "[", count: 100_000),
        ]
        for (i, header) in cases.enumerated() {
            let path = dir + "/\(i).safetensors"
            try HostileFiles.raw(header, data: Data(count: 8)).write(to: URL(fileURLWithPath: path))
            #expect(throws: WeightError.self, "case \(i): \(header.prefix(80))") { try SafeTensorsFile(path: path) }
        }
    }

    /// Inputs `make fuzz` saved because they once killed or stalled the reader: each must be a typed error now.
    @Test func fuzzRegressions() throws {
        let dir = try TemporaryDirectory.make(prefix: "fuzz-safetensors")
        for (i, saved) in FuzzRegressions.files("safetensors").enumerated() {
            let path = dir + "/\(i).safetensors"
            try FuzzRegressions.bytes(saved).write(to: URL(fileURLWithPath: path))
            #expect(throws: WeightError.self, "\(saved)") {
                let file = try SafeTensorsFile(path: path)
                for name in file.names { _ = try file.tensor(name) }
            }
        }
    }
}
