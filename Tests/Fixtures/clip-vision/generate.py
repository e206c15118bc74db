#!/usr/bin/env python3
"""Builds the CLIP vision encoder parity fixtures from transformers' CLIPVisionModel / CLIPVisionModelWithProjection
(tiny random models of the real architectures, real weight key names) and from transformers' CLIP image processor.

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt:
    python Tests/Fixtures/clip-vision/generate.py
Everything is seeded. A file whose tensors and metadata are already on disk is not rewritten (safetensors orders a
header with metadata differently from run to run).

1. Models (folders `vit-h-projection`, `vit-l`): config.json + weights + io.safetensors.
   - vit-h-projection/: CLIPVisionModelWithProjection shaped like IP-Adapter's models/image_encoder (OpenCLIP ViT-H/14:
     GELU, a bias-free visual_projection), hidden 40, 5 heads, MLP 160, 3 layers, 32x32 images in 8x8 patches
     (17 tokens), projection 24. Weights rounded through float16 and stored as float16 in model.fp16.safetensors only
     (the expected outputs come from exactly those weights, in float32), keys `vision_model.*` and
     `visual_projection.weight`, as the published file and transformers 5 name them.
   - vit-l/: CLIPVisionModel shaped like SDRO's image_encoder (OpenAI CLIP ViT-L/14: quick GELU), hidden 32, 4 heads,
     MLP 128, 3 layers, 28x28 images in 7x7 patches (17 tokens). float32 model.safetensors with the keys unprefixed,
     as transformers 5 saves a CLIPVisionModel (the published transformers-4 file has them under `vision_model.`).
   - io.safetensors: pixel_values [2,3,S,S] (normal), last_hidden_state [2,17,D] (after the last layer, before
     post_layernorm), penultimate_hidden_state [2,17,D] (hidden_states[-2]: checked to be the last layer's input),
     pooled [2,D] (pooler_output: post_layernorm of the class token), image_embeds [2,P] (projection only).

2. Preprocessing (folder `preprocess`): transformers' CLIPImageProcessorPil, the PIL backend of transformers 5, which is
   what transformers 4's CLIPImageProcessor was and what IP-Adapter and SDRO ran (transformers 5's plain
   CLIPImageProcessor resizes with torchvision instead, and torchvision does not load beside the CPU torch here).
   Steps: RGBA composited onto white (PIL.Image.alpha_composite), bicubic resize so the shortest side is 224
   (PIL, a = -0.5, support 2, fixed point on uint8), centre crop 224x224, x/255, (x - mean) / std with OpenAI CLIP's
   mean and std.
   - cases.json: each case's source PNG (Examples/art), the rectangle cut from it (x, y, width, height), whether an
     alpha ramp is put on it (alpha = (7x + 3y) mod 256 over the cut), the processor settings (shortest_edge,
     crop height/width) and the output size.
   - NAME.png: what CLIPImageProcessorPil makes of the case before rescaling (the 8-bit crop, as RGB PNG).
   - levels.safetensors: `pixel_values` [3,256]: the processor's output for every 8-bit level of each channel, read
     off its output on a 224x224 image holding every level; the script checks that every case's pixel_values is
     exactly levels[c, crop[c, y, x]], so the PNGs and this table are the processor's whole output.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision, randomize  # noqa: E402
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


MODELS = {
    "vit-h-projection": dict(
        cls="CLIPVisionModelWithProjection", half=True, prefixed=True,
        config=dict(hidden_size=40, intermediate_size=160, num_hidden_layers=3, num_attention_heads=5, image_size=32,
                    patch_size=8, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=24)),
    "vit-l": dict(
        cls="CLIPVisionModel", half=False, prefixed=False,
        config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, image_size=28,
                    patch_size=7, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16)),
}


def save(path, tensors, metadata=None):
    fixture_io.save(path, tensors, metadata, root=HERE)


def models():
    import transformers
    from transformers import CLIPVisionConfig

    for name, case in MODELS.items():
        g = torch.Generator().manual_seed(29)
        config = CLIPVisionConfig(**case["config"])
        model = getattr(transformers, case["cls"])(config).eval()
        randomize(model, g)
        if case["half"]:
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(torch.float16).to(torch.float32))
        size = config.image_size
        pixels = torch.randn((2, 3, size, size), generator=g)
        tower = model.vision_model if case["cls"] == "CLIPVisionModelWithProjection" else model
        last_inputs = []
        hook = tower.encoder.layers[-1].register_forward_pre_hook(lambda m, args: last_inputs.append(args[0].clone()))
        with torch.no_grad():
            out = model(pixels, output_hidden_states=True)
            pooled = tower(pixels).pooler_output
        hook.remove()
        assert len(out.hidden_states) == config.num_hidden_layers + 1
        assert torch.equal(out.hidden_states[-2], last_inputs[0]), "hidden_states[-2] is the last layer's input"
        assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
        with torch.no_grad():  # last_hidden_state is before post_layernorm; pooled is post_layernorm(class token)
            assert torch.allclose(tower.post_layernorm(out.last_hidden_state[:, 0]), pooled)
        tensors = {"pixel_values": pixels, "last_hidden_state": out.last_hidden_state,
                   "penultimate_hidden_state": out.hidden_states[-2], "pooled": pooled}
        if case["cls"] == "CLIPVisionModelWithProjection":
            tensors["image_embeds"] = out.image_embeds
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        state = model.state_dict()
        if case["cls"] == "CLIPVisionModel" and case["prefixed"]:
            state = {f"vision_model.{k}": v for k, v in state.items()}
        if case["cls"] == "CLIPVisionModelWithProjection":
            assert all(k.startswith("vision_model.") or k == "visual_projection.weight" for k in state), list(state)
        elif not case["prefixed"]:
            assert not any(k.startswith("vision_model.") for k in state)
        if case["half"]:
            save(os.path.join(folder, "model.fp16.safetensors"), {k: v.to(torch.float16) for k, v in state.items()},
                 metadata={"format": "pt"})
        else:
            save(os.path.join(folder, "model.safetensors"), state, metadata={"format": "pt"})
        model.config.architectures = [case["cls"]]  # as save_pretrained writes it
        model.config.to_json_file(os.path.join(folder, "config.json"))
        save(os.path.join(folder, "io.safetensors"), tensors)


# --- preprocessing ----------------------------------------------------------------------------------------------

# name: source PNG, cut rectangle (x, y, w, h) or None for the whole picture, alpha ramp, processor settings.
DEFAULT = dict(shortest_edge=224, crop_height=224, crop_width=224)
PREPROCESS_CASES = [
    # square, downscaled 512 -> 224
    ("umbrella-square", "umbrella-colored.png", None, False, DEFAULT),
    # landscape 512x448 -> 256x224, cropped 16 px each side
    ("blocks-landscape", "blocks-colored.png", None, False, DEFAULT),
    # RGBA with alpha 0 and 255 only (the hints layer): composited onto white
    ("blocks-hints-rgba", "blocks-hints.png", None, False, DEFAULT),
    # every alpha level, on a portrait cut: 200x360 -> 224x403, cropped vertically
    ("umbrella-alpha-ramp", "umbrella-colored.png", (150, 40, 200, 360), True, DEFAULT),
    # upscaled portrait: 150x300 -> 224x448 (PIL's filter at scale < 1, support 2)
    ("lineart-upscaled", "umbrella-lineart.png", (100, 50, 150, 300), False, DEFAULT),
    # width already 224: no horizontal pass and no resize at all, only the crop of 300 rows to 224
    ("blocks-no-resize", "blocks-lineart.png", (200, 100, 224, 300), False, DEFAULT),
    # a thin odd-sized strip: 511x97 -> 1180x224, the height upscaled and the width upscaled by a non-integer factor
    ("blocks-strip", "blocks-colored.png", (1, 300, 511, 97), False, DEFAULT),
    # a non-square crop (processor settings shortest_edge 96, crop 96 high x 64 wide) of the landscape picture
    ("blocks-crop-96x64", "blocks-colored.png", None, False, dict(shortest_edge=96, crop_height=96, crop_width=64)),
]


def source_image(file, cut, ramp):
    """The case's input as a PIL image: the PNG, the cut, the alpha ramp (as the Swift test rebuilds it)."""
    from PIL import Image

    image = Image.open(os.path.join(ROOT, "Examples", "art", file))
    image.load()
    if cut is not None:
        x, y, w, h = cut
        image = image.crop((x, y, x + w, y + h))
    if ramp:
        rgba = np.array(image.convert("RGBA"))
        h, w = rgba.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        rgba[..., 3] = ((7 * xx + 3 * yy) % 256).astype(np.uint8)
        image = Image.fromarray(rgba, "RGBA")
    return image


def preprocess():
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    folder = os.path.join(HERE, "preprocess")
    os.makedirs(folder, exist_ok=True)

    # Every 8-bit level of every channel: a 224x224 image (no resize, no crop at the default settings).
    yy, xx = np.mgrid[0:224, 0:224]
    ramp = np.stack([(yy * 224 + xx + 85 * c) % 256 for c in range(3)], axis=-1).astype(np.uint8)
    default = CLIPImageProcessorPil()
    out = default(images=Image.fromarray(ramp, "RGB"), return_tensors="np").pixel_values[0]
    assert out.dtype == np.float32 and out.shape == (3, 224, 224)
    levels = np.zeros((3, 256), dtype=np.float32)
    for c in range(3):
        channel = ramp[..., c]
        for v in range(256):
            values = np.unique(out[c][channel == v])
            assert len(values) == 1, (c, v, values)
            levels[c, v] = values[0]
    save(os.path.join(folder, "levels.safetensors"), {"pixel_values": torch.from_numpy(levels)})

    cases = []
    for name, file, cut, ramp_alpha, settings in PREPROCESS_CASES:
        image = source_image(file, cut, ramp_alpha)
        kwargs = dict(size={"shortest_edge": settings["shortest_edge"]},
                      crop_size={"height": settings["crop_height"], "width": settings["crop_width"]})
        processor = CLIPImageProcessorPil(**kwargs)
        pixel_values = processor(images=image, return_tensors="np").pixel_values[0]
        crop = CLIPImageProcessorPil(**kwargs, do_rescale=False, do_normalize=False)(
            images=image, return_tensors="np").pixel_values[0]
        assert crop.dtype == np.uint8 and crop.shape == pixel_values.shape, (crop.dtype, crop.shape)
        # The whole float output is the level table applied to the 8-bit crop.
        rebuilt = np.stack([levels[c][crop[c]] for c in range(3)])
        assert np.array_equal(rebuilt, pixel_values), name
        Image.fromarray(np.moveaxis(crop, 0, -1), "RGB").save(os.path.join(folder, f"{name}.png"), optimize=True)
        cases.append(dict(name=name, source=f"Examples/art/{file}", cut=list(cut) if cut else None,
                          alpha_ramp=ramp_alpha, input_mode=image.mode, input_size=list(image.size), **settings,
                          output_size=[crop.shape[2], crop.shape[1]]))
        print(f"preprocess/{name}.png: {image.mode} {image.size[0]}x{image.size[1]} -> "
              f"{crop.shape[2]}x{crop.shape[1]}, {os.path.getsize(os.path.join(folder, name + '.png')) / 1024:.1f} KiB")
    with open(os.path.join(folder, "cases.json"), "w") as f:
        f.write("[\n" + ",\n".join(" " + json.dumps(c) for c in cases) + "\n]\n")


def main():
    hide_broken_torchvision()
    torch.manual_seed(0)
    models()
    preprocess()


if __name__ == "__main__":
    main()
