// The ControlNets of a models directory: what is found, what each is for, what is refused and why.
import Foundation
import PaintsEngine
import PaintsTestSupport
import Testing

@Suite struct ControlNetLibraryTests {
    @Test func kindsFromThePublishedNames() {
        let names: [(String, ControlNetEntry.Kind)] = [
            ("control_v11p_sd15_lineart", .lineart), ("control_v11p_sd15s2_lineart_anime", .lineartAnime),
            ("control_v11p_sd15_scribble", .scribble), ("control_v11p_sd15_canny", .canny), ("control_v11p_sd15_softedge", .softedge),
            ("control_v11f1p_sd15_depth", .depth), ("control_v11p_sd15_openpose", .openpose), ("control_v11f1e_sd15_tile", .tile),
            ("Anime-Lineart-CN", .lineartAnime), ("my_controlnet", .unknown),
        ]
        for (name, kind) in names { #expect(ControlNetEntry.Kind.guess(name) == kind, "\(name)") }
        #expect(ControlNetEntry.Kind.lineart.takesLineArt && ControlNetEntry.Kind.scribble.takesLineArt)
        #expect(!ControlNetEntry.Kind.canny.takesLineArt && !ControlNetEntry.Kind.softedge.takesLineArt)
    }

    @Test func foldersSingleFilesSidecarsAndRefusals() throws {
        let dir = try TemporaryDirectory.make(prefix: "controlnet")
        let fm = FileManager.default
        let fixtures = Repository.path("Tests/Fixtures")
        try fm.createSymbolicLink(atPath: dir + "/control_v11p_sd15_canny", withDestinationPath: fixtures + "/controlnet/pipeline/controlnet-a")
        try fm.createSymbolicLink(atPath: dir + "/control_v11p_sd15s2_lineart_anime.safetensors",
                                  withDestinationPath: fixtures + "/controlnet/single/control_v11p_sd15_tiny_lineart.safetensors")
        try fm.createSymbolicLink(atPath: dir + "/house-style.safetensors",
                                  withDestinationPath: fixtures + "/controlnet/single/tiny_scribble_noprefix.safetensors")
        try Data(#"{"kind": "lineart"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/house-style.json"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/control_v11p_sd15_lineart.pth"))
        try fm.createSymbolicLink(atPath: dir + "/a-unet.safetensors", withDestinationPath: fixtures + "/diffusion/unet-sd1/diffusion_pytorch_model.safetensors")
        try fm.createSymbolicLink(atPath: dir + "/scribbles", withDestinationPath: fixtures + "/controlnet/pipeline/controlnet-b")
        try Data(#"{"kind": "crayons"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/scribbles.json"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/README.txt"))

        let entries = ControlNetLibrary.entries(in: dir)
        #expect(entries.map(\.name) == ["a-unet", "control_v11p_sd15_canny", "control_v11p_sd15_lineart", "control_v11p_sd15s2_lineart_anime",
                                        "house-style", "scribbles"])
        func entry(_ name: String) throws -> ControlNetEntry { try #require(entries.first { $0.name == name }) }
        #expect(try entry("a-unet").problem?.contains("not a ControlNet") == true)
        #expect(try entry("control_v11p_sd15_canny").kind == .canny && entry("control_v11p_sd15_canny").problem == nil)
        #expect(try entry("control_v11p_sd15_lineart").problem?.contains("pickle") == true)
        #expect(try entry("control_v11p_sd15s2_lineart_anime").kind == .lineartAnime)
        #expect(try entry("house-style").kind == .lineart && entry("house-style").kindSource == "sidecar")
        #expect(try entry("scribbles").problem?.contains("scribbles.json") == true)
        // The lineart model is a pickle and the house style is line art by its sidecar: a plain press uses it.
        #expect(ControlNetLibrary.lineArtDefault(entries)?.name == "house-style")
        // Every usable entry loads.
        for e in entries where e.problem == nil { _ = try ControlNetLibrary.load(path: e.path) }
        // Its weights' bytes (the 1.66 MB file less its header).
        let bytes = ControlNetLibrary.residentBytes(path: try entry("control_v11p_sd15_canny").path)
        #expect(bytes > 1_600_000 && bytes < 1_656_416, "\(bytes)")
    }
}
