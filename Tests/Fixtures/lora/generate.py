#!/usr/bin/env python3
"""Builds the LoRA parity fixtures: random LoRA files for the tiny SD1 UNet (../diffusion/unet-sd1) and CLIP text
encoder (../diffusion/clip-sd1) in the layouts artists download, and the outputs diffusers computes with them.

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt plus peft
(diffusers' LoRA loading needs it):
    python Tests/Fixtures/lora/generate.py
Everything is seeded; a file whose content is already on disk is not rewritten.

Files
- kohya/lora_tiny.safetensors (f16, no metadata): kohya sd-scripts layout (networks/lora.py: name = prefix + module
  path with "." -> "_"): lora_unet_<path>.{lora_down.weight, lora_up.weight, alpha} and lora_te_<path>.{...}, rank 4,
  alpha 2 (scale alpha/rank = 0.5) in every module. UNet targets: every Linear and 1x1 conv of the transformers
  (attn1/attn2 to_q/to_k/to_v/to_out.0, ff.net.0.proj, ff.net.2, proj_in, proj_out) and, LoCon-style, the resnets'
  conv1 / conv2 (3x3: lora_down a 3x3 conv [4, I, 3, 3], lora_up 1x1 [O, 4, 1, 1]), time_emb_proj and conv_shortcut.
  Text encoder: every layer's self_attn q/k/v/out_proj and mlp fc1/fc2.
- peft/pytorch_lora_weights.safetensors (f16, no metadata): the diffusers/PEFT layout (what save_lora_weights
  writes): unet.<path>.lora_A.weight / lora_B.weight and text_encoder.<path>.lora_A.weight / lora_B.weight, rank 3,
  no alpha (scale 1), on the transformers' attention projections and ff and the text encoder's q/k/v/out_proj.
- peft-alpha/pytorch_lora_weights.safetensors: the same tensors as peft/ with the metadata diffusers' save_lora_weights
  writes since 0.35 ("lora_adapter_metadata": each component's LoraConfig as JSON, keys prefixed "unet." /
  "text_encoder."): UNet lora_alpha 6 with r 3 (scale 2) and alpha_pattern {"attn2.to_k": 1.5} (scale 0.5 on every
  attn2.to_k: PEFT matches a pattern against the module path's tail), text encoder lora_alpha 1.5 (scale 0.5). diffusers
  loads it with lora_state_dict(return_lora_metadata=True) and metadata=... (what load_lora_weights does).
- locon-tucker/lora_tiny.safetensors (f16): LyCORIS LoCon with Tucker lora_mid on the resnets' 3x3 convs and the
  down/upsamplers (rank 3, alpha 1.5); see tucker_file. Expected output RESTATED (diffusers cannot load lora_mid).
- io.safetensors (f32): sample [2,4,8,6], timesteps [2] (10, 700), encoder_hidden_states [2,5,32], input_ids [2,77]
  (int64, from ../diffusion/clip-sd1/io.safetensors), multiplier [1] (0.8 for kohya), peft_multiplier [1] (1.3), alpha_multiplier [1] (0.6, peft-alpha);
  unet_base / te_base: the outputs without any LoRA; unet_kohya / te_kohya: with the kohya file at 0.8;
  unet_peft / te_peft: with the PEFT file at 1.3; unet_both / te_both: with both stacked (kohya 0.8, PEFT 1.3); unet_peft_alpha / te_peft_alpha: peft-alpha at 0.6;
  tucker_multiplier [1] (0.7), unet_tucker: the UNet with the Tucker file merged in at 0.7 (restated).
  te_* are last_hidden_state [2,77,32].

How the expected outputs are made: diffusers 0.42.1 StableDiffusionLoraLoaderMixin.lora_state_dict (which converts
kohya keys, _convert_non_diffusers_lora_to_diffusers, and returns the alphas), load_lora_into_unet /
load_lora_into_text_encoder with an adapter name, then set_adapters / set_weights_and_activate_adapters with the
multiplier: PEFT's UNFUSED forward (y = base(x) + lora_B(lora_A(x)) * scaling * weight). Not fused. Every LoRA module in
the files is checked to have been loaded (a PEFT layer holds it), and each output is cross-checked against a
restatement that merges W + m * alpha/rank * up@down into a copy of the base model (agreement asserted to 1e-4).
Weights are normal(0, 0.2) for down and up (so the LoRA changes the output clearly), rounded through float16 before
anything is computed.
"""
import copy
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision  # noqa: E402

hide_broken_torchvision()
from diffusers import UNet2DConditionModel  # noqa: E402
from diffusers.loaders import StableDiffusionLoraLoaderMixin  # noqa: E402
from diffusers.utils.peft_utils import set_weights_and_activate_adapters  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

DIFFUSION = os.path.join(os.path.dirname(HERE), "diffusion")
KOHYA_MULT, PEFT_MULT, ALPHA_MULT, TUCKER_MULT = 0.8, 1.3, 0.6, 0.7


def save(name, tensors, metadata=None):
    fixture_io.save(os.path.join(HERE, name), tensors, metadata, root=HERE)


def base_models():
    unet = UNet2DConditionModel.from_pretrained(os.path.join(DIFFUSION, "unet-sd1")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(DIFFUSION, "clip-sd1")).eval()
    return unet, text


def unet_targets(unet, kohya):
    out = []
    for name, m in unet.named_modules():
        if not isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        attention = ".attentions." in name and any(name.endswith(s) for s in (
            "to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"))
        resnet = ".resnets." in name and any(name.endswith(s) for s in ("conv1", "conv2", "time_emb_proj", "conv_shortcut"))
        if attention and (kohya or not name.endswith(("proj_in", "proj_out"))) or (kohya and resnet):
            out.append((name, m))
    return out


def te_targets(text, kohya):
    """The text encoder's layers under their published names: transformers 5 has no `text_model` submodule, but the
    checkpoints' keys, and so the LoRA files artists download, start with text_model. (lora_te_text_model_encoder_...,
    text_encoder.text_model.encoder...)."""
    suffixes = ("q_proj", "k_proj", "v_proj", "out_proj") + (("fc1", "fc2") if kohya else ())
    return [(n if n.startswith("text_model.") else "text_model." + n, m) for n, m in text.named_modules()
            if isinstance(m, torch.nn.Linear) and n.endswith(suffixes)]


def random_pair(m, rank, g):
    """(down, up) for module m, rounded through float16."""
    def r(*shape):
        return (torch.randn(*shape, generator=g) * 0.2).half().float()
    if isinstance(m, torch.nn.Conv2d):
        k = m.kernel_size[0]
        return r(rank, m.in_channels, k, k), r(m.out_channels, rank, 1, 1)
    return r(rank, m.in_features), r(m.out_features, rank)


def make_files(unet, text):
    g = torch.Generator().manual_seed(1414)
    kohya, kohya_modules = {}, {}
    for prefix, targets in (("lora_unet_", unet_targets(unet, True)), ("lora_te_", te_targets(text, True))):
        for name, m in targets:
            down, up = random_pair(m, 4, g)
            key = prefix + name.replace(".", "_")
            kohya[key + ".lora_down.weight"], kohya[key + ".lora_up.weight"] = down.half(), up.half()
            kohya[key + ".alpha"] = torch.tensor(2.0).half()
            kohya_modules[(prefix, name)] = (down, up, 2.0 / 4)
    peft, peft_modules = {}, {}
    for prefix, targets in (("unet.", unet_targets(unet, False)), ("text_encoder.", te_targets(text, False))):
        for name, m in targets:
            down, up = random_pair(m, 3, g)
            peft[f"{prefix}{name}.lora_A.weight"], peft[f"{prefix}{name}.lora_B.weight"] = down.half(), up.half()
            peft_modules[(prefix, name)] = (down, up, 1.0)
    save("kohya/lora_tiny.safetensors", kohya)
    save("peft/pytorch_lora_weights.safetensors", peft)
    # The same tensors with diffusers' adapter metadata (what save_lora_weights writes since 0.35): the UNet at
    # lora_alpha 6 (scale 2) except the attn2.to_k layers (alpha_pattern 1.5, scale 0.5), the text encoder at 1.5.
    config = {"unet.r": 3, "unet.lora_alpha": 6, "unet.alpha_pattern": {"attn2.to_k": 1.5}, "unet.rank_pattern": {},
              "unet.target_modules": ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"],
              "text_encoder.r": 3, "text_encoder.lora_alpha": 1.5, "text_encoder.alpha_pattern": {}, "text_encoder.rank_pattern": {},
              "text_encoder.target_modules": ["q_proj", "k_proj", "v_proj", "out_proj"]}
    save("peft-alpha/pytorch_lora_weights.safetensors", peft,
         {"format": "pt", "lora_adapter_metadata": json.dumps(config, indent=2, sort_keys=True)})
    alpha_modules = {(p, n): (d, u, (1.5 if n.endswith("attn2.to_k") else 6.0) / 3 if p == "unet." else 0.5)
                     for (p, n), (d, u, _) in peft_modules.items()}
    return kohya_modules, peft_modules, alpha_modules


def tucker_file(unet):
    """A LyCORIS LoCon file with Tucker decomposition (lycoris/modules/locon.py, use_tucker): lora_down 1x1 [r, I, 1, 1],
    lora_mid [r, r, k, k] with the layer's stride and padding, lora_up 1x1 [O, r, 1, 1], alpha; on every 3x3 conv of
    the resnets and the down/upsamplers (the downsampler has stride 2). diffusers cannot load lora_mid, so the expected
    output is the merge restated: dW[o, i] = sum_ab up[o, a] mid[a, b] down[b, i] (kh, kw kept), ComfyUI's
    LoRAAdapter folds mid into down the same way."""
    g = torch.Generator().manual_seed(1515)
    tensors, deltas = {}, {}
    rank, alpha = 3, 1.5

    def r(*shape):
        return (torch.randn(*shape, generator=g) * 0.2).half().float()
    for name, m in unet.named_modules():
        if not (isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)):
            continue
        if not (".resnets." in name and name.endswith(("conv1", "conv2")) or "samplers.0.conv" in name):
            continue
        down, mid, up = r(rank, m.in_channels, 1, 1), r(rank, rank, 3, 3), r(m.out_channels, rank, 1, 1)
        key = "lora_unet_" + name.replace(".", "_")
        tensors.update({key + ".lora_down.weight": down.half(), key + ".lora_mid.weight": mid.half(),
                        key + ".lora_up.weight": up.half(), key + ".alpha": torch.tensor(alpha).half()})
        deltas[name] = torch.einsum("oa,abhw,bi->oihw", up[:, :, 0, 0], mid, down[:, :, 0, 0]) * (alpha / rank)
    save("locon-tucker/lora_tiny.safetensors", tensors)
    return deltas


def merged(model, modules, component_prefixes, mult):
    """The restatement: a copy of `model` with W + mult * scale * up @ down merged in."""
    model = copy.deepcopy(model)
    named = dict(model.named_modules())
    named.update({"text_model." + k: v for k, v in list(named.items())})
    with torch.no_grad():
        for (prefix, name), (down, up, scale) in modules.items():
            if prefix not in component_prefixes:
                continue
            w = named[name].weight
            delta = (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
            w.add_(mult * scale * delta)
    return model


def with_diffusers(unet, text, files):
    """Copies of the UNet and text encoder with `files` [(path, adapter, multiplier)] loaded as diffusers does, unfused."""
    unet, text = copy.deepcopy(unet), copy.deepcopy(text)
    for path, adapter, _ in files:
        state, alphas, metadata = StableDiffusionLoraLoaderMixin.lora_state_dict(path, return_lora_metadata=True)
        n_unet = sum(k.startswith("unet.") for k in state)
        n_te = sum(k.startswith("text_encoder.") for k in state)
        assert n_unet + n_te == len(state), f"{path}: keys diffusers did not assign: {[k for k in state if not k.startswith(('unet.', 'text_encoder.'))]}"
        StableDiffusionLoraLoaderMixin.load_lora_into_unet(state, alphas, unet, adapter_name=adapter, metadata=metadata)
        StableDiffusionLoraLoaderMixin.load_lora_into_text_encoder(state, alphas, text, prefix="text_encoder", adapter_name=adapter,
                                                                   metadata=metadata)
    names, weights = [a for _, a, _ in files], [m for _, _, m in files]
    unet.set_adapters(names, weights=weights)
    set_weights_and_activate_adapters(text, names, weights)
    return unet, text


def count_loaded(model, adapter):
    return sum(1 for m in model.modules() if hasattr(m, "lora_A") and adapter in m.lora_A)


def main():
    torch.manual_seed(0)
    unet, text = base_models()
    kohya_modules, peft_modules, alpha_modules = make_files(unet, text)
    g = torch.Generator().manual_seed(7)
    sample = torch.randn(2, 4, 8, 6, generator=g)
    timesteps = torch.tensor([10.0, 700.0])
    context = torch.randn(2, 5, 32, generator=g)
    input_ids = load_file(os.path.join(DIFFUSION, "clip-sd1", "io.safetensors"))["input_ids"]

    def run(u, t):
        with torch.no_grad():
            return u(sample, timesteps, encoder_hidden_states=context).sample, t(input_ids).last_hidden_state

    io = {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context, "input_ids": input_ids,
          "multiplier": torch.tensor([KOHYA_MULT]), "peft_multiplier": torch.tensor([PEFT_MULT]),
          "alpha_multiplier": torch.tensor([ALPHA_MULT])}
    io["unet_base"], io["te_base"] = run(unet, text)
    kohya_file, peft_file = os.path.join(HERE, "kohya/lora_tiny.safetensors"), os.path.join(HERE, "peft/pytorch_lora_weights.safetensors")
    runs = {"kohya": [(kohya_file, "kohya", KOHYA_MULT)], "peft": [(peft_file, "peft", PEFT_MULT)],
            "both": [(kohya_file, "kohya", KOHYA_MULT), (peft_file, "peft", PEFT_MULT)],
            "peft_alpha": [(os.path.join(HERE, "peft-alpha/pytorch_lora_weights.safetensors"), "alpha", ALPHA_MULT)]}
    by_adapter = {"kohya": kohya_modules, "peft": peft_modules, "alpha": alpha_modules}
    for label, files in runs.items():
        u, t = with_diffusers(unet, text, files)
        for _, adapter, _ in files:
            modules = by_adapter[adapter]
            expected_unet = sum(p in ("lora_unet_", "unet.") for p, _ in modules)
            assert count_loaded(u, adapter) == expected_unet, (label, adapter, count_loaded(u, adapter), expected_unet)
            assert count_loaded(t, adapter) == len(modules) - expected_unet, (label, adapter)
        io[f"unet_{label}"], io[f"te_{label}"] = run(u, t)
        # Cross-check against the merged restatement.
        mu, mt = unet, text
        for _, adapter, mult in files:
            modules = by_adapter[adapter]
            mu = merged(mu, modules, ("lora_unet_", "unet."), mult)
            mt = merged(mt, modules, ("lora_te_", "text_encoder."), mult)
        ru, rt = run(mu, mt)
        du = (ru - io[f"unet_{label}"]).abs().max().item()
        dt = (rt - io[f"te_{label}"]).abs().max().item()
        change = (io[f"unet_{label}"] - io["unet_base"]).abs().max().item()
        print(f"{label}: diffusers vs merged restatement: unet {du:.2e}, text encoder {dt:.2e}; LoRA changes the UNet output by {change:.3f}")
        assert du < 1e-4 and dt < 1e-4
    deltas = tucker_file(unet)
    tucker = copy.deepcopy(unet)
    named = dict(tucker.named_modules())
    with torch.no_grad():
        for name, delta in deltas.items():
            named[name].weight.add_(TUCKER_MULT * delta)
    io["tucker_multiplier"] = torch.tensor([TUCKER_MULT])
    io["unet_tucker"], _ = run(tucker, text)
    print(f"tucker: {len(deltas)} convs; LoRA changes the UNet output by {(io['unet_tucker'] - io['unet_base']).abs().max().item():.3f}")
    save("io.safetensors", io)


if __name__ == "__main__":
    main()
