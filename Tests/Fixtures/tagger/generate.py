#!/usr/bin/env python3
"""Builds the WD v3 tagger parity fixtures: tiny timm ViT and ConvNeXt taggers in the published form (config.json,
model.safetensors with timm's key names, selected_tags.csv), random weights, and their outputs for fixed inputs.

Run from the repository root with the pinned stack (`make fixtures`):
    python Tests/Fixtures/tagger/generate.py

The published taggers (SmilingWolf/wd-vit-tagger-v3, wd-convnext-tagger-v3) are timm's vit_base_patch16_224 (448 px,
no class token, mean pooling, no fc_norm, tanh GELU) and convnext_base (448 px). These fixtures are the same timm
classes at toy width. selected_tags.csv here is written by hand (ratings, general tags, characters, in the published
column order) so tag formatting can be checked against known names.

timm imports torchvision at import time (transforms, datasets, FrozenBatchNorm2d) but its ViT and ConvNeXt forward
passes never call it. PyPI carries only CUDA builds of torchvision, which cannot load beside the CPU torch of these
machines, so when torchvision is missing a stand-in module is installed for the import only.
"""
import csv
import json
import os
import sys
from unittest import mock

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "diffusion"))
from generate import randomize, save as save_in_diffusion  # noqa: E402


def import_timm():
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                     "torchvision.transforms.v2", "torchvision.ops", "torchvision.ops.misc", "torchvision.datasets",
                     "torchvision.models", "torchvision.models.feature_extraction", "torchvision.io",
                     "torchvision.utils"):
            sys.modules[name] = mock.MagicMock(name=name)
    import timm
    return timm


def save(name, tensors, metadata=None):
    save_in_diffusion(os.path.join("..", "tagger", name), tensors, metadata)


def labels():
    with open(os.path.join(HERE, "selected_tags.csv")) as f:
        return list(csv.DictReader(f))


CASES = {
    "vit": dict(architecture="vit_base_patch16_224", size=32,
                model_args=dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, class_token=False,
                                global_pool="avg", fc_norm=False, act_layer="gelu_tanh")),
    "convnext": dict(architecture="convnext_base", size=64,
                     model_args=dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32])),
}


def main():
    timm = import_timm()
    names = labels()
    for name, case in CASES.items():
        g = torch.Generator().manual_seed(41)
        model = timm.create_model(case["architecture"], pretrained=False, num_classes=len(names),
                                  **case["model_args"]).eval()
        randomize(model, g)
        size = case["size"]
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        config = {"architecture": case["architecture"], "num_classes": len(names), "num_features": model.num_features,
                  "global_pool": "avg", "model_args": case["model_args"],
                  "pretrained_cfg": {"input_size": [3, size, size], "interpolation": "bicubic", "crop_pct": 1.0,
                                     "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                                     "num_classes": len(names)}}
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        save(f"{name}/model.safetensors", model.state_dict())
        with open(os.path.join(HERE, "selected_tags.csv")) as src, open(os.path.join(folder, "selected_tags.csv"), "w") as dst:
            dst.write(src.read())
        # The model's input: a BGR image scaled to -1...1 (timm's transform with mean = std = 0.5, channels swapped).
        image = torch.rand((2, 3, size, size), generator=g) * 2 - 1
        with torch.no_grad():
            logits = model(image)
        save(f"{name}-io.safetensors", {"input": image, "logits": logits, "probabilities": torch.sigmoid(logits)})


if __name__ == "__main__":
    main()
