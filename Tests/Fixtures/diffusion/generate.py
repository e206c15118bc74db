#!/usr/bin/env python3
"""Builds the numerical-parity fixtures of the diffusion engine from the reference implementation (diffusers).

Run from the repository root with the pinned stack of requirements.txt (`make fixtures` makes the venv):
    python Tests/Fixtures/diffusion/generate.py
Everything is seeded; outputs are small safetensors files in this folder, committed, so CI never needs torch.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision, randomize  # noqa: E402
torch.manual_seed(0)


def save(name, tensors, metadata=None):
    fixture_io.save(os.path.join(HERE, name), tensors, metadata, root=HERE)


def dtypes():
    """Values in every float dtype the loader reads, with the exact f32 value each rounds to."""
    values = torch.tensor([0.0, 1.0, -2.5, 3.14159265, 1e-3, -65000.0, 1e-5, 123.456], dtype=torch.float32)
    out = {"values_f32": values, "token_ids_i64": torch.tensor([49406, 320, 1125, 49407], dtype=torch.int64)}
    for name, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16), ("f64", torch.float64)]:
        converted = values.to(dtype)
        out[f"values_{name}"] = converted
        out[f"values_{name}_rounded_f32"] = converted.to(torch.float32)
    save("dtypes.safetensors", out)


# --- schedulers -------------------------------------------------------------------------------------------------

SD_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
LINEAR_BETAS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")

SCHEDULER_CASES = [
    ("ddim-sd15", "DDIMScheduler", dict(**SD_BETAS, set_alpha_to_one=False, steps_offset=1, clip_sample=False,
                                        timestep_spacing="leading"), 20),
    ("ddim-vpred-zsnr", "DDIMScheduler", dict(**SD_BETAS, set_alpha_to_one=False, clip_sample=False,
                                              prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                              timestep_spacing="trailing"), 10),
    ("euler-a-sd15", "EulerAncestralDiscreteScheduler", dict(**SD_BETAS, steps_offset=1, timestep_spacing="leading"), 20),
    ("euler-a-linear-vpred", "EulerAncestralDiscreteScheduler", dict(**LINEAR_BETAS, prediction_type="v_prediction",
                                                                     timestep_spacing="linspace"), 8),
    ("dpmpp2m-karras", "DPMSolverMultistepScheduler", dict(**SD_BETAS, steps_offset=1, use_karras_sigmas=True,
                                                           algorithm_type="dpmsolver++", solver_order=2), 20),
    ("dpmpp2m-linear-vpred", "DPMSolverMultistepScheduler", dict(**LINEAR_BETAS, prediction_type="v_prediction",
                                                                 algorithm_type="dpmsolver++", solver_order=2), 12),
    ("unipc-sd15", "UniPCMultistepScheduler", dict(**SD_BETAS, steps_offset=1, solver_order=2, solver_type="bh2"), 20),
    ("unipc-karras-vpred", "UniPCMultistepScheduler", dict(**SD_BETAS, use_karras_sigmas=True, solver_order=2,
                                                           prediction_type="v_prediction"), 10),
]


def toy_model(model_input, t):
    """A deterministic stand-in for the UNet that the Swift test computes the same way."""
    return torch.tanh(model_input * 0.7) * 0.9 + 0.01 * (float(t) / 1000.0)


def schedulers():
    import diffusers
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module

    for name, cls_name, config, steps in SCHEDULER_CASES:
        cls = getattr(diffusers, cls_name)
        scheduler = cls(**config)
        scheduler.set_timesteps(steps)
        g = torch.Generator().manual_seed(1234)
        sample = torch.randn((1, 4, 8, 8), generator=g) * scheduler.init_noise_sigma
        tensors = {
            "timesteps": scheduler.timesteps.to(torch.float64),
            "alphas_cumprod": scheduler.alphas_cumprod.to(torch.float32),
            "init_noise_sigma": torch.tensor([float(scheduler.init_noise_sigma)], dtype=torch.float64),
            "sample_0": sample.clone(),
        }
        if hasattr(scheduler, "sigmas"):
            tensors["sigmas"] = scheduler.sigmas.to(torch.float32)
        recorded = []

        def recording_randn(shape, generator=None, device=None, dtype=None, layout=None):
            noise = torch.randn(shape, generator=g, dtype=torch.float32)
            recorded.append(noise.clone())
            return noise.to(dtype or torch.float32)

        euler_a_module.randn_tensor = recording_randn
        for i, t in enumerate(scheduler.timesteps):
            model_input = scheduler.scale_model_input(sample, t)
            output = toy_model(model_input, t)
            tensors[f"model_input_{i}"] = model_input.clone()
            sample = scheduler.step(output, t, sample).prev_sample
            tensors[f"sample_{i + 1}"] = sample.clone()
        for i, noise in enumerate(recorded):
            tensors[f"noise_{i}"] = noise
        save(f"scheduler-{name}.safetensors", tensors,
             metadata={"class": cls_name, "config": json.dumps(config), "steps": str(steps)})


def ops():
    """Inputs and torch outputs of each tensor operation the engine implements."""
    import torch.nn.functional as F
    from diffusers.models.embeddings import get_timestep_embedding

    g = torch.Generator().manual_seed(7)

    def randn(*shape, scale=1.0):
        return torch.randn(shape, generator=g) * scale

    t = {}
    x = randn(2, 5, 7, 9)
    for name, (o, k, stride, pad) in {"conv3": (6, 3, 1, 1), "conv3s2": (4, 3, 2, 1), "conv1": (3, 1, 1, 0),
                                      "conv4valid": (2, 4, 1, 0)}.items():
        w, b = randn(o, 5, k, k, scale=0.3), randn(o)
        t[f"{name}.input"], t[f"{name}.weight"], t[f"{name}.bias"] = x, w, b
        t[f"{name}.output"] = F.conv2d(x, w, b, stride=stride, padding=pad)
    gn = randn(2, 8, 5, 6, scale=2.0) + 0.5
    gw, gb = randn(8), randn(8)
    t["group_norm.input"], t["group_norm.weight"], t["group_norm.bias"] = gn, gw, gb
    t["group_norm.output"] = F.group_norm(gn, 4, gw, gb, eps=1e-6)
    t["group_norm_silu.output"] = F.silu(F.group_norm(gn, 4, gw, gb, eps=1e-6))
    ln = randn(3, 4, 16, scale=3.0)
    lw, lb = randn(16), randn(16)
    t["layer_norm.input"], t["layer_norm.weight"], t["layer_norm.bias"] = ln, lw, lb
    t["layer_norm.output"] = F.layer_norm(ln, (16,), lw, lb, eps=1e-5)
    li, lwt, lbi = randn(3, 4, 10), randn(7, 10), randn(7)
    t["linear.input"], t["linear.weight"], t["linear.bias"] = li, lwt, lbi
    t["linear.output"] = F.linear(li, lwt, lbi)
    heads, d = 3, 8
    q, k, v = randn(2, 11, heads * d), randn(2, 13, heads * d), randn(2, 13, heads * d)
    t["attention.query"], t["attention.key"], t["attention.value"] = q, k, v

    def split(z):
        return z.view(z.shape[0], z.shape[1], heads, d).transpose(1, 2)

    attn = F.scaled_dot_product_attention(split(q), split(k), split(v))
    t["attention.output"] = attn.transpose(1, 2).reshape(2, 11, heads * d)
    act = randn(4, 6, scale=3.0)
    t["activation.input"] = act
    t["silu.output"], t["gelu.output"] = F.silu(act), F.gelu(act)
    t["quick_gelu.output"] = act * torch.sigmoid(1.702 * act)
    hidden, gate = act.chunk(2, dim=-1)
    t["geglu.output"] = hidden * F.gelu(gate)
    up = randn(1, 2, 3, 4)
    t["upsample.input"], t["upsample.output"] = up, F.interpolate(up, scale_factor=2.0, mode="nearest")
    steps = torch.tensor([0.0, 1.0, 261.0, 999.0])
    t["timesteps"] = steps
    t["timestep_embedding.sd"] = get_timestep_embedding(steps, 320, flip_sin_to_cos=True, downscale_freq_shift=0)
    t["timestep_embedding.odd_shift1"] = get_timestep_embedding(steps, 16, flip_sin_to_cos=False, downscale_freq_shift=1)
    save("ops.safetensors", t)


UNET_CASES = {
    # SD1.x layout: heads given as attention_head_dim, conv projections, 768-style context (here 32).
    "unet-sd1": dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                     attention_head_dim=4, norm_num_groups=8),
    # SD2.x layout: per-block head dims, linear projections, a wider context, three levels.
    "unet-sd2": dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32, 32), layers_per_block=2,
                     down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=48,
                     attention_head_dim=(2, 4, 4), use_linear_projection=True, norm_num_groups=8,
                     upcast_attention=True),
}


def unets():
    from diffusers import UNet2DConditionModel

    for name, config in UNET_CASES.items():
        g = torch.Generator().manual_seed(11)
        model = UNet2DConditionModel(**config).eval()
        randomize(model, g)
        sample = torch.randn((2, 4, 16, 12), generator=g)
        timesteps = torch.tensor([10.0, 700.0])
        context = torch.randn((2, 7, config["cross_attention_dim"]), generator=g)
        with torch.no_grad():
            out = model(sample, timesteps, encoder_hidden_states=context).sample
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        save(f"{name}/io.safetensors", {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context,
                                        "output": out})


def vae():
    from diffusers import AutoencoderKL

    g = torch.Generator().manual_seed(13)
    model = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                          up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 32), layers_per_block=1,
                          latent_channels=4, norm_num_groups=8, sample_size=32).eval()
    randomize(model, g)
    image = torch.rand((2, 3, 20, 12), generator=g) * 2 - 1
    latents = torch.randn((2, 4, 6, 4), generator=g)
    with torch.no_grad():
        posterior = model.encode(image).latent_dist
        decoded = model.decode(latents).sample
    folder = os.path.join(HERE, "vae")
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    save("vae/io.safetensors", {"image": image, "mean": posterior.mean, "logvar": posterior.logvar, "latents": latents,
                                "decoded": decoded})
    # Tiled encode and decode as diffusers' enable_tiling() runs them: tiles of sample_size pixels (32 here, 8
    # latents), overlapping by a quarter, blended linearly; inputs larger than one tile and not a whole number of tiles.
    model.enable_tiling()
    big_image = torch.rand((1, 3, 56, 44), generator=g) * 2 - 1
    big_latents = torch.randn((1, 4, 14, 11), generator=g)
    with torch.no_grad():
        tiled_posterior = model.encode(big_image).latent_dist
        tiled_decoded = model.decode(big_latents).sample
    save("vae/tiled.safetensors", {"image": big_image, "mean": tiled_posterior.mean, "latents": big_latents,
                                   "decoded": tiled_decoded})


CLIP_CASES = {
    # SD1.x: CLIP ViT-L/14 layout (quick GELU), used from its last layer.
    "clip-sd1": dict(vocab_size=3514, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                     max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=16),
    # SD2.x: OpenCLIP ViT-H layout (GELU).
    "clip-sd2": dict(vocab_size=1000, hidden_size=48, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                     max_position_embeddings=77, hidden_act="gelu", projection_dim=16),
}


def clips():
    from transformers import CLIPTextConfig, CLIPTextModel

    for name, config in CLIP_CASES.items():
        g = torch.Generator().manual_seed(17)
        model = CLIPTextModel(CLIPTextConfig(**config)).eval()
        randomize(model, g)
        ids = torch.randint(0, config["vocab_size"], (2, 77), generator=g)
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
            # clip skip 1 (A1111 "CLIP skip 2"): the penultimate layer, then the final layer norm, as diffusers does.
            penultimate = model.final_layer_norm(out.hidden_states[-2])
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        # The published SD text encoders name their weights text_model.*; transformers 5 saves them unprefixed.
        save(f"{name}/model.safetensors", {f"text_model.{k}": v for k, v in model.state_dict().items()},
             metadata={"format": "pt"})
        model.config.to_json_file(os.path.join(folder, "config.json"))
        save(f"{name}/io.safetensors", {"input_ids": ids, "last_hidden_state": out.last_hidden_state,
                                        "penultimate_normed": penultimate})


TOKENIZER_PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer",
    "it's a dog's life, isn't it? we'll see; they'd've known",
    "lineart:1.2, (colorful) [sketch] \\(escaped\\) -- !!! ...",
    "café naïve façade Ünïcödé ÀÉÎÕÜ",
    "日本語のテキスト and 한국어",
    "emoji 🎨🖌️ paint ✨",
    "tabs\tand\nnew   lines   and    spaces",
    "numbers 12345 3.14 1920x1080 #ff00aa",
    "e\u0301 composed vs \u00e9",
    " ".join(["watercolor landscape with mountains"] * 20),
    "",
]


def tokenizer():
    """A CLIP BPE tokenizer cut down from the real vocabulary (OpenAI CLIP's bpe_simple_vocab_16e6, MIT licence, as
    shipped by open_clip_torch): the byte alphabet plus the first 3000 merges, and reference ids from transformers'
    CLIPTokenizer for prompts of every kind, padded with <|endoftext|> (SD1.x) and with "!" (SD2.x)."""
    import gzip
    import importlib.util

    from transformers import CLIPTokenizer

    spec = importlib.util.find_spec("open_clip")
    bpe = os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:1 + 3000]
    merges = [tuple(m.split()) for m in merges]
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    alphabet = [chr(c) for c in cs]
    vocab_list = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    folder = os.path.join(HERE, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    expected = {}
    for pad, suffix in [("<|endoftext|>", "sd1"), ("!", "sd2")]:
        tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                            pad_token=pad)
        tok = CLIPTokenizer.from_pretrained(folder) if False else tok
        ids = tok(TOKENIZER_PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        expected[f"ids_{suffix}"] = ids
        unpadded = [tok(p, add_special_tokens=False).input_ids for p in TOKENIZER_PROMPTS]
        flat = [i for row in unpadded for i in row]
        expected[f"raw_ids_{suffix}"] = torch.tensor(flat, dtype=torch.int64)
        expected[f"raw_lengths_{suffix}"] = torch.tensor([len(r) for r in unpadded], dtype=torch.int64)
    with open(os.path.join(folder, "prompts.json"), "w", encoding="utf-8") as f:
        json.dump(TOKENIZER_PROMPTS, f, ensure_ascii=False, indent=1)
    save("tokenizer/expected.safetensors", expected)


def pipeline():
    """A whole txt2img run of the diffusers StableDiffusionPipeline with the tiny components above (SD1 layout), from
    fixed initial noise, DPM++ 2M Karras, classifier-free guidance; and an img2img run from its output."""
    from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline,
                           StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(os.path.join(HERE, "unet-sd1")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(HERE, "vae")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(HERE, "clip-sd1")).eval()
    folder = os.path.join(HERE, "tokenizer")
    tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                        model_max_length=77)
    scheduler_config = dict(**SD_BETAS, steps_offset=1, use_karras_sigmas=True, algorithm_type="dpmsolver++",
                            solver_order=2)
    scheduler = DPMSolverMultistepScheduler(**scheduler_config)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    g = torch.Generator().manual_seed(21)
    latents = torch.randn((1, 4, 8, 6), generator=g)
    prompt, negative = "a watercolor painting of a cat", "blurry"
    with torch.no_grad():
        image = pipe(prompt, negative_prompt=negative, height=32, width=24, num_inference_steps=5, guidance_scale=7.5,
                     latents=latents.clone(), output_type="np").images
        img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
        noise = torch.randn((1, 4, 8, 6), generator=g)

        def fixed_noise(shape, generator=None, device=None, dtype=None, layout=None):
            return noise.clone()

        import diffusers.models.autoencoders.vae as vae_module
        import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as i2i_module
        i2i_module.randn_tensor = fixed_noise
        # The engine encodes img2img sources to the posterior mean (deterministic); make the reference do the same.
        vae_module.DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mean
        source = torch.from_numpy(image).permute(0, 3, 1, 2) * 2 - 1
        image2 = img2img(prompt, image=source, negative_prompt=negative, strength=0.6, num_inference_steps=5,
                         guidance_scale=5.0, output_type="np").images
    save("pipeline/io.safetensors", {
        "latents": latents, "image": torch.from_numpy(image).permute(0, 3, 1, 2).contiguous(),
        "img2img_noise": noise, "img2img_image": torch.from_numpy(image2).permute(0, 3, 1, 2).contiguous(),
    }, metadata={"prompt": prompt, "negative_prompt": negative, "steps": "5", "guidance": "7.5",
                 "img2img_strength": "0.6", "img2img_guidance": "5.0", "scheduler": json.dumps(scheduler_config)})


RESNET_TO_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
                 "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def unet_to_ldm(state, layers, levels, attention_levels):
    """diffusers UNet keys -> original LDM keys (the inverse of diffusers' convert_ldm_unet_checkpoint)."""
    out = {}
    simple = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}

    def resnet(rest):
        head, tail = rest.split(".", 1)
        return RESNET_TO_LDM[head] + "." + tail

    for key, value in state.items():
        parts = key.split(".")
        if ".".join(parts[:-1]) in simple:
            new = simple[".".join(parts[:-1])] + "." + parts[-1]
        elif parts[0] == "down_blocks":
            b, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:])
            if kind == "downsamplers":
                new = f"input_blocks.{1 + b * (layers + 1) + layers}.0.op.{parts[-1]}"
            else:
                i = 1 + b * (layers + 1) + int(parts[3])
                new = f"input_blocks.{i}.0.{resnet(rest)}" if kind == "resnets" else f"input_blocks.{i}.1.{rest}"
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            new = f"middle_block.{2 * j}.{resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            b, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:])
            if kind == "upsamplers":
                i = b * (layers + 1) + layers
                slot = 2 if (levels - 1 - b) in attention_levels else 1
                new = f"output_blocks.{i}.{slot}.conv.{parts[-1]}"
            else:
                i = b * (layers + 1) + int(parts[3])
                new = f"output_blocks.{i}.0.{resnet(rest)}" if kind == "resnets" else f"output_blocks.{i}.1.{rest}"
        else:
            raise KeyError(key)
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(state, levels):
    out = {}
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        parts = new.split(".")
        if parts[1] == "down_blocks":
            new = f"{parts[0]}.down.{parts[2]}." + (f"block.{parts[4]}." if parts[3] == "resnets" else "downsample.") \
                + ".".join(parts[5:] if parts[3] == "resnets" else parts[6:])
            if "downsample." in new:
                new = new.replace("downsample.", "downsample.conv.")
        elif parts[1] == "up_blocks":
            k = levels - 1 - int(parts[2])
            new = f"{parts[0]}.up.{k}." + (f"block.{parts[4]}." + ".".join(parts[5:]) if parts[3] == "resnets"
                                           else "upsample.conv." + parts[-1])
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                new = f"{parts[0]}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:])
            else:
                inner = ".".join(parts[4:-1])
                new = f"{parts[0]}.mid.attn_1.{attention[inner]}.{parts[-1]}"
                if value.dim() == 2:
                    value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def single_file():
    """The tiny SD1 stack as one original-layout (LDM) checkpoint, checked to convert back with diffusers' own
    single-file converters to exactly the diffusers weights."""
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from safetensors.torch import load_file

    unet_state = load_file(os.path.join(HERE, "unet-sd1", "diffusion_pytorch_model.safetensors"))
    vae_state = load_file(os.path.join(HERE, "vae", "diffusion_pytorch_model.safetensors"))
    clip_state = load_file(os.path.join(HERE, "clip-sd1", "model.safetensors"))
    unet_config = json.load(open(os.path.join(HERE, "unet-sd1", "config.json")))
    vae_config = json.load(open(os.path.join(HERE, "vae", "config.json")))
    levels = len(unet_config["block_out_channels"])
    attention_levels = {i for i, t in enumerate(unet_config["down_block_types"]) if t.startswith("CrossAttn")}
    checkpoint = {}
    checkpoint.update(unet_to_ldm(unet_state, unet_config["layers_per_block"], levels, attention_levels))
    checkpoint.update(vae_to_ldm(vae_state, len(vae_config["block_out_channels"])))
    checkpoint.update({"cond_stage_model.transformer." + k: v for k, v in clip_state.items()})
    # diffusers reads it back to the same weights:
    back = convert_ldm_unet_checkpoint(checkpoint, unet_config)
    assert set(back) == set(unet_state) and all(torch.equal(back[k], unet_state[k]) for k in back), "unet"
    back = convert_ldm_vae_checkpoint(checkpoint, vae_config)
    assert set(back) == set(vae_state) and all(torch.equal(back[k], vae_state[k]) for k in back), "vae"
    back = convert_ldm_clip_checkpoint(checkpoint)
    assert set(back) == set(clip_state) and all(torch.equal(back[k], clip_state[k]) for k in back), "clip"
    save("single-file-sd1.safetensors", checkpoint)


def single_file_openclip():
    """An SD2.x-style OpenCLIP text encoder in the original single-file layout (fused in_proj q/k/v, resblocks, ln_final;
    one more block than SD2 uses, as the published files have), checked with diffusers' own converter, with the
    output SD2 takes: the penultimate block's hidden states through the final layer norm. Head width 64 as in
    OpenCLIP ViT-H, so the loader's rule for the head count applies unchanged."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    g = torch.Generator().manual_seed(23)
    model = CLIPTextModel(CLIPTextConfig(vocab_size=1000, hidden_size=128, intermediate_size=96, num_hidden_layers=3,
                                         num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
                                         projection_dim=16)).eval()
    randomize(model, g)
    # transformers 5 names them without the text_model. prefix that published checkpoints and diffusers use.
    state = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in model.state_dict().items()}
    prefix = "cond_stage_model.model."
    checkpoint = {prefix + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
                  prefix + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
                  prefix + "ln_final.weight": state["text_model.final_layer_norm.weight"],
                  prefix + "ln_final.bias": state["text_model.final_layer_norm.bias"],
                  prefix + "text_projection": torch.randn((128, 16), generator=g)}
    for i in range(3):
        src, dst = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            checkpoint[dst + "attn.in_proj_" + kind] = torch.cat([state[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"])
            checkpoint[dst + "attn.out_proj." + kind] = state[f"{src}self_attn.out_proj.{kind}"]
            checkpoint[dst + "ln_1." + kind] = state[f"{src}layer_norm1.{kind}"]
            checkpoint[dst + "ln_2." + kind] = state[f"{src}layer_norm2.{kind}"]
            checkpoint[dst + "mlp.c_fc." + kind] = state[f"{src}mlp.fc1.{kind}"]
            checkpoint[dst + "mlp.c_proj." + kind] = state[f"{src}mlp.fc2.{kind}"]
    back = convert_open_clip_checkpoint(model, checkpoint)
    assert all(torch.equal(back[k], state[k]) for k in state if k in back) and set(state) <= set(back), "openclip"
    ids = torch.randint(0, 1000, (2, 77), generator=g)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        penultimate = model.final_layer_norm(out.hidden_states[-2])
    save("single-file-openclip.safetensors", checkpoint)
    save("single-file-openclip-io.safetensors", {"input_ids": ids, "penultimate_normed": penultimate})


if __name__ == "__main__":
    hide_broken_torchvision()
    dtypes()
    schedulers()
    ops()
    unets()
    vae()
    clips()
    tokenizer()
    pipeline()
    single_file()
    single_file_openclip()
