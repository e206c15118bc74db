#!/usr/bin/env python3
"""Builds the ControlNet parity fixtures from diffusers' ControlNetModel (tiny models of the real architecture) and from
diffusers' ControlNet pipelines.

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt:
    python Tests/Fixtures/controlnet/generate.py
Every parameter, the zero convolutions included, is re-initialised with seeded random values so that each output
depends on every weight. A file whose tensors and metadata are already on disk is not rewritten (safetensors orders a
header with metadata differently from run to run).

1. Diffusers folders (cases `tiny`, `tiny-sd2`)
   tiny/ and tiny-sd2/: config.json + diffusion_pytorch_model.safetensors (float32), and io.safetensors with
   inputs sample [2,4,8,12], timesteps [2] (10, 700), encoder_hidden_states [2,5,C], controlnet_cond [2,3,64,96]
   (0..1, 8x the latent size), conditioning_scale [1] (0.7); outputs down_0 .. down_{k-1} (one per skip connection,
   12 for the SD1.5 layout of `tiny`, 6 for `tiny-sd2`) and mid.

2. Single-file ControlNet 1.1 layout (folder single/), what users download as control_v11p_sd15_*.safetensors
   A tiny SD1-family ControlNet with the facts a single-file loader assumes for SD1 and reads nowhere else:
   norm_num_groups 32, 8 heads (SD1's `attention_head_dim: 8`), conv (not linear) projections in the transformers,
   cross_attention_dim 32 (not 1024, so SD1 family), 4 levels of layers_per_block 2 (CrossAttn x3 + DownBlock2D, so
   12 down residuals), block_out_channels (32, 32, 64, 64), conditioning embedding (4, 8, 8, 16) (eight hint convs,
   input_hint_block.0..14 as in the real files), 3 conditioning channels. Weights are rounded through float16 before
   the expected outputs are computed (in float32), so the float16 files hold exactly the weights used.
   - single/control_v11p_sd15_tiny_lineart.safetensors: float16, every key prefixed `control_model.` (as the original
     ControlNet 1.1 .pth / .safetensors files).
   - single/tiny_scribble_noprefix.safetensors: the same float16 weights, without the prefix.
   Original (cldm) key layout, the inverse of diffusers' convert_controlnet_checkpoint:
     time_embedding.linear_1/2            -> time_embed.0/2
     conv_in                              -> input_blocks.0.0
     down_blocks.b.resnets.j              -> input_blocks.{1 + b*(L+1) + j}.0.{in_layers.0/2, emb_layers.1,
                                             out_layers.0/3, skip_connection}   (norm1/conv1/time_emb_proj/norm2/conv2/
                                             conv_shortcut)
     down_blocks.b.attentions.j.<rest>    -> input_blocks.{1 + b*(L+1) + j}.1.<rest> (same inner names)
     down_blocks.b.downsamplers.0.conv    -> input_blocks.{1 + b*(L+1) + L}.0.op
     mid_block.resnets.0/1, attentions.0  -> middle_block.0/2, middle_block.1
     controlnet_cond_embedding.conv_in    -> input_hint_block.0
     controlnet_cond_embedding.blocks.k   -> input_hint_block.{2(k+1)}
     controlnet_cond_embedding.conv_out   -> input_hint_block.{2(len(blocks)+1)} (= 14 here, as in the real files)
     controlnet_down_blocks.i             -> zero_convs.i.0
     controlnet_mid_block                 -> middle_block_out.0
   Both files are checked to convert back with diffusers' own single-file converter (convert_controlnet_checkpoint,
   through ControlNetModel.from_single_file with the tiny config) to exactly the same weights and the same outputs.
   - single/io.safetensors: sample [2,4,8,12], timesteps [2] (10, 700), encoder_hidden_states [2,5,32],
     controlnet_cond [2,3,64,96] in 0..1, conditioning_scale [1] (0.9); outputs down_0 .. down_11 and mid.

3. Whole pipelines with ControlNets (folder pipeline/): diffusers StableDiffusionControlNetPipeline and
   StableDiffusionControlNetImg2ImgPipeline with the tiny SD1 components of ../diffusion (unet-sd1, vae, clip-sd1,
   tokenizer), DPMSolverMultistepScheduler (SD betas, steps_offset 1, Karras sigmas, dpmsolver++, order 2; a fresh one
   per run), 5 steps, prompt "a watercolor painting of a cat", negative "blurry", 32x24 images (8x6 latents: the tiny
   VAE downsamples 4x), output_type "np" (the decoded image (x/2 + 0.5) clamped to 0..1).
   - pipeline/controlnet-a/: ControlNetModel.from_unet(unet-sd1, conditioning_embedding_out_channels=(4, 8, 8)),
     randomized (seed 41), float32.
   - pipeline/controlnet-b/: the same layout, randomized with seed 43, weights rounded through float16 and stored as
     float16 (the runs use exactly those weights, in float32).
     Both have 4 down residuals (conv_in; level 0 resnet + downsampler; level 1 resnet) and a mid residual; the hint
     embedding is conv_in + 4 blocks (two of stride 2) + conv_out.
   - pipeline/io.safetensors, per run (images NCHW [1,3,32,24], latents [1,4,8,6]):
       txt2img_latents, txt2img_control (0..1), txt2img_image (0..1)
       img2img_noise, img2img_source (-1..1: txt2img_image * 2 - 1, what the VAE encodes), img2img_control,
       img2img_image
       guess_latents, guess_control, guess_image
       multi_latents, multi_control_a, multi_control_b, multi_image
     metadata (JSON strings): "scheduler" (the scheduler config), "prompt", "negative_prompt", "steps", and one entry
     per run ("txt2img", "img2img", "guess", "multi") with its settings, the timesteps it ran, and what diffusers
     passed the ControlNet(s) at each step: "controlnet_scales" (conditioning_scale per step, per ControlNet),
     "controlnet_batch" (batch of the ControlNet's sample / controlnet_cond / encoder_hidden_states).
     Runs:
       txt2img: controlnet-a, guidance 7.5, controlnet_conditioning_scale 0.8, control_guidance_start 0.0, end 0.8.
       img2img: controlnet-a, source = txt2img_image, strength 0.6, guidance 5.0, scale 1.0, start 0.25, end 1.0.
                The VAE encodes to the posterior mean (DiagonalGaussianDistribution.sample is patched to return the
                mean) and the noise added to it is img2img_noise (the pipeline module's randn_tensor is patched).
       guess:   controlnet-a, guess_mode=True, guidance 7.5, scale 1.0 (start 0, end 1).
                PATCHED: diffusers' guess mode scales the residuals by torch.logspace(-1, 0, k) * scale; paintsd uses
                ControlNet 1.1's guess-mode scales (cldm / gradio_*.py: strength * 0.825 ** (12 - i)), i.e.
                scale * 0.825 ** (k - 1 - i) for the k = (down residuals + 1) residuals, i = 0 the first down residual,
                the mid residual i = k - 1 (factor 1). For this run only, torch.logspace as seen by diffusers'
                controlnet module returns those powers (computed in float64, then float32); everything else of
                diffusers' guess mode is diffusers' own.
       multi:   MultiControlNetModel [controlnet-a, controlnet-b], multi_control_a / multi_control_b, scales
                [0.7, 0.5], control_guidance_start [0.0, 0.2], end [1.0, 0.6], guidance 7.5.

   diffusers 0.42.1 semantics the Swift side must reproduce (pipeline_controlnet.py; the img2img file in brackets):
   - Which steps get control (L1231-1237 [L1212-1218]): for step i of the n = len(timesteps) steps actually run,
     keep = 1.0 - float(i / n < start or (i + 1) / n > end), per ControlNet; the ControlNet still runs, with
     conditioning_scale = scale * keep (L1267-1273 [L1241-1247]), so a step with keep 0 adds zero residuals.
     Comparisons are in Python double; the boundaries are inclusive (i / n == start and (i + 1) / n == end keep
     control). For img2img, n is the length of the truncated list (get_timesteps, L801-810:
     timesteps[t_start * order:], t_start = steps - min(int(steps * strength), steps)) and i counts from 0 at the first
     step run: here 3 steps, start 0.25 -> keeps [0, 1, 1]. txt2img (end 0.8): [1, 1, 1, 1, 0]. multi: A [1]*5,
     B (start 0.2, end 0.6) [0, 1, 1, 0, 0] (1/5 == 0.2 and 3/5 == 0.6 are kept).
   - Control image and classifier-free guidance (prepare_image L796-824 [prepare_control_image L770-798]): the 0..1
     control image is not normalized (do_normalize=False), resized (nearest; a no-op at the output size) and, with CFG
     and not guess mode, duplicated as torch.cat([image] * 2): the same image for the unconditional and conditional
     halves. The ControlNet gets the CFG batch latent_model_input (scaled latents twice) and prompt_embeds =
     [negative, positive] (L1264-1265 [L1238-1239]).
   - Guess mode with CFG (L1258-1262, L1285-1290 [L1232-1236, L1259-1264]): the ControlNet runs once, on the
     conditional half only: scheduler.scale_model_input(latents, t) (batch 1), prompt_embeds.chunk(2)[1] (the positive
     text only), the control image not duplicated; its residuals are concatenated after zeros, so the unconditional
     UNet pass gets no control. ControlNetModel.forward (models/controlnets/controlnet.py L781-785) scales by
     logspace(-1, 0, k) * conditioning_scale (patched here, see above); the pipeline sets guess_mode when the
     ControlNet's config has global_pool_conditions (L1115).
   - Multi-ControlNet (models/controlnets/multicontrolnet.py L80-105): each net runs with its own image and
     scale * keep, and the residuals are summed.
"""
import contextlib
import importlib.util
import json
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision, randomize  # noqa: E402
DIFFUSION = os.path.join(HERE, "..", "diffusion")

CASES = {
    # SD1.x layout at SD1.5's depth: four levels of two layers (12 down residuals), heads given as attention_head_dim,
    # conv projections; the conditioning embedding downsamples 8x with four channel widths, as the real (16, 32, 96, 256).
    "tiny": dict(in_channels=4, conditioning_channels=3, block_out_channels=(8, 16, 16, 16), layers_per_block=2,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                 cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
                 conditioning_embedding_out_channels=(4, 8, 8, 16)),
    # SD2.x layout: per-block head dims, linear projections, upcast attention, three levels of one layer (6 residuals),
    # BGR conditioning channel order.
    "tiny-sd2": dict(in_channels=4, conditioning_channels=3, block_out_channels=(8, 16, 16), layers_per_block=1,
                     down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                     cross_attention_dim=24, attention_head_dim=(2, 4, 4), use_linear_projection=True, norm_num_groups=4,
                     upcast_attention=True, conditioning_embedding_out_channels=(4, 4, 8, 8),
                     controlnet_conditioning_channel_order="bgr"),
}

# The single-file case: what the Swift single-file loader assumes for SD1 (groups 32, 8 heads, conv projections,
# context width != 1024), at SD1.5's depth (4 levels x 2 layers, 12 down residuals), with the real 8-conv hint block.
SINGLE = dict(in_channels=4, conditioning_channels=3, block_out_channels=(32, 32, 64, 64), layers_per_block=2,
              down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
              cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32, use_linear_projection=False,
              conditioning_embedding_out_channels=(4, 8, 8, 16))


def save(path, tensors, metadata=None):
    fixture_io.save(path, tensors, metadata, root=HERE)


def round_to_half(model):
    """Rounds every parameter through float16, so that float16 files hold exactly the weights the outputs come from."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.float16).to(torch.float32))


def diffusion_fixtures():
    """Tests/Fixtures/diffusion/generate.py as a module (for unet_to_ldm, SD_BETAS)."""
    spec = importlib.util.spec_from_file_location("diffusion_fixtures", os.path.join(DIFFUSION, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    state = torch.random.get_rng_state()
    spec.loader.exec_module(module)
    torch.random.set_rng_state(state)  # it seeds the global generator on import; leave ours as it was
    return module


def diffusers_folders():
    from diffusers import ControlNetModel

    for name, config in CASES.items():
        g = torch.Generator().manual_seed(23)
        model = ControlNetModel(**config).eval()
        randomize(model, g)
        sample = torch.randn((2, 4, 8, 12), generator=g)
        timesteps = torch.tensor([10.0, 700.0])
        context = torch.randn((2, 5, config["cross_attention_dim"]), generator=g)
        cond = torch.rand((2, 3, 64, 96), generator=g)
        scale = torch.tensor([0.7])
        with torch.no_grad():
            down, mid = model(sample, timesteps, encoder_hidden_states=context, controlnet_cond=cond,
                              conditioning_scale=float(scale[0]), return_dict=False)
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        io = {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context, "controlnet_cond": cond,
              "conditioning_scale": scale, "mid": mid}
        io.update({f"down_{i}": d for i, d in enumerate(down)})
        save(os.path.join(folder, "io.safetensors"), io)
        print(f"{name}: {len(down)} down residuals, {sum(p.numel() for p in model.parameters())} parameters")


# --- single-file ControlNet 1.1 layout --------------------------------------------------------------------------------

def controlnet_to_ldm(state, config):
    """diffusers ControlNetModel keys -> original ControlNet (cldm) keys, without the control_model. prefix."""
    levels = len(config["block_out_channels"])
    unet_to_ldm = diffusion_fixtures().unet_to_ldm
    backbone = {k: v for k, v in state.items() if not k.startswith("controlnet_")}
    out = {k[len("model.diffusion_model."):]: v
           for k, v in unet_to_ldm(backbone, config["layers_per_block"], levels, set()).items()}
    blocks = len({k.split(".")[2] for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
    for key, value in state.items():
        if not key.startswith("controlnet_"):
            continue
        parts = key.split(".")
        if parts[0] == "controlnet_cond_embedding":
            index = {"conv_in": 0, "conv_out": 2 * (blocks + 1)}.get(parts[1])
            index = 2 * (int(parts[2]) + 1) if parts[1] == "blocks" else index
            new = f"input_hint_block.{index}.{parts[-1]}"
        elif parts[0] == "controlnet_down_blocks":
            new = f"zero_convs.{parts[1]}.0.{parts[-1]}"
        elif parts[0] == "controlnet_mid_block":
            new = f"middle_block_out.0.{parts[-1]}"
        else:
            raise KeyError(key)
        out[new] = value
    assert len(out) == len(state)
    return out


def single_file():
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    g = torch.Generator().manual_seed(29)
    model = ControlNetModel(**SINGLE).eval()
    randomize(model, g)
    round_to_half(model)
    sample = torch.randn((2, 4, 8, 12), generator=g)
    timesteps = torch.tensor([10.0, 700.0])
    context = torch.randn((2, 5, SINGLE["cross_attention_dim"]), generator=g)
    cond = torch.rand((2, 3, 64, 96), generator=g)
    scale = torch.tensor([0.9])
    inputs = dict(encoder_hidden_states=context, controlnet_cond=cond, conditioning_scale=float(scale[0]),
                  return_dict=False)
    with torch.no_grad():
        down, mid = model(sample, timesteps, **inputs)
    state = {k: v.to(torch.float16) for k, v in model.state_dict().items()}
    original = controlnet_to_ldm(state, dict(model.config))
    assert {k.split(".")[1] for k in original if k.startswith("input_hint_block.")} == {str(i) for i in range(0, 16, 2)}
    assert {k.split(".")[1] for k in original if k.startswith("zero_convs.")} == {str(i) for i in range(12)}
    folder = os.path.join(HERE, "single")
    os.makedirs(folder, exist_ok=True)
    files = {"control_v11p_sd15_tiny_lineart.safetensors": {"control_model." + k: v for k, v in original.items()},
             "tiny_scribble_noprefix.safetensors": original}
    for name, tensors in files.items():
        save(os.path.join(folder, name), tensors)
    # diffusers reads both back, with its own converter, to the same weights and the same outputs.
    with tempfile.TemporaryDirectory() as config_folder:
        model.save_config(config_folder)
        for name, tensors in files.items():
            back = convert_controlnet_checkpoint(tensors, dict(model.config))
            assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state), name
            loaded = ControlNetModel.from_single_file(os.path.join(folder, name), config=config_folder,
                                                      local_files_only=True, torch_dtype=torch.float32).eval()
            loaded_state = loaded.state_dict()
            assert set(loaded_state) == set(state), name
            assert all(torch.equal(loaded_state[k], state[k].to(torch.float32)) for k in state), name
            with torch.no_grad():
                down2, mid2 = loaded(sample, timesteps, **inputs)
            assert torch.equal(mid, mid2) and all(torch.equal(a, b) for a, b in zip(down, down2)), name
            print(f"single/{name}: diffusers' from_single_file gives the same weights and outputs")
    io = {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context, "controlnet_cond": cond,
          "conditioning_scale": scale, "mid": mid}
    io.update({f"down_{i}": d for i, d in enumerate(down)})
    save(os.path.join(folder, "io.safetensors"), io)
    print(f"single: {len(down)} down residuals, {sum(p.numel() for p in model.parameters())} parameters")


# --- whole pipelines ------------------------------------------------------------------------------------------------

def line_art(generator, strokes):
    """A 32x24 line-art-like control image: thin white strokes on black, plus a little per-channel noise, in 0..1."""
    image = torch.zeros((1, 3, 32, 24))
    for kind, a, b, c in strokes:
        if kind == "row":
            image[:, :, a, b:c] = 1.0
        elif kind == "col":
            image[:, :, b:c, a] = 1.0
        elif kind == "diag":
            for k in range(c):
                if 0 <= a + k < 32 and 0 <= b + k < 24:
                    image[:, :, a + k, b + k] = 1.0
        elif kind == "circle":
            y, x = torch.meshgrid(torch.arange(32.0), torch.arange(24.0), indexing="ij")
            r = ((y - a) ** 2 + (x - b) ** 2).sqrt()
            image[:, :, (r - c).abs() < 0.6] = 1.0
    noise = torch.rand((1, 3, 32, 24), generator=generator) * 0.15
    return (image * 0.85 + noise).clamp(0.0, 1.0)


@contextlib.contextmanager
def cn11_guess_scales(expected_count):
    """For the duration: torch.logspace as diffusers' controlnet module sees it returns ControlNet 1.1's guess-mode
    factors 0.825 ** (k - 1 - i) (float64 powers, then float32) instead of 10 ** linspace(-1, 0, k)."""
    import diffusers.models.controlnets.controlnet as controlnet_module

    calls = []

    def logspace(start, end, steps, device=None, **kwargs):
        assert (start, end, steps) == (-1, 0, expected_count) and not kwargs, (start, end, steps, kwargs)
        calls.append(steps)
        return torch.tensor([0.825 ** (steps - 1 - i) for i in range(steps)], dtype=torch.float64).to(
            device=device, dtype=torch.float32)

    class TorchWithLogspace:
        def __getattr__(self, name):
            return getattr(torch, name)

    proxy = TorchWithLogspace()
    proxy.logspace = logspace
    controlnet_module.torch = proxy
    try:
        yield calls
    finally:
        controlnet_module.torch = torch


def record_calls(controlnets):
    """Records, per call of each ControlNet, the conditioning_scale and the batch sizes diffusers passes."""
    records = [[] for _ in controlnets]
    handles = []
    for record, net in zip(records, controlnets):
        def hook(module, args, kwargs, record=record):
            sample = args[0] if args else kwargs["sample"]
            cond = kwargs["controlnet_cond"]
            record.append(dict(scale=float(kwargs["conditioning_scale"]), sample=sample.shape[0],
                               cond=tuple(cond.shape), text=kwargs["encoder_hidden_states"].shape[0],
                               cond_tensor=cond.clone()))
        handles.append(net.register_forward_pre_hook(hook, with_kwargs=True))
    return records, handles


def pipelines():
    import diffusers.models.autoencoders.vae as vae_module
    import diffusers.pipelines.controlnet.pipeline_controlnet_img2img as cn_i2i_module
    from diffusers import (AutoencoderKL, ControlNetModel, DPMSolverMultistepScheduler,
                           StableDiffusionControlNetImg2ImgPipeline, StableDiffusionControlNetPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTokenizer

    sd_betas = diffusion_fixtures().SD_BETAS
    unet = UNet2DConditionModel.from_pretrained(os.path.join(DIFFUSION, "unet-sd1")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(DIFFUSION, "vae")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(DIFFUSION, "clip-sd1")).eval()
    folder = os.path.join(DIFFUSION, "tokenizer")
    tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                        model_max_length=77)
    scheduler_config = dict(**sd_betas, steps_offset=1, use_karras_sigmas=True, algorithm_type="dpmsolver++",
                            solver_order=2)

    out = os.path.join(HERE, "pipeline")
    nets = {}
    for name, seed, half in [("a", 41, False), ("b", 43, True)]:
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8)).eval()
        randomize(net, torch.Generator().manual_seed(seed))
        if half:
            round_to_half(net)
            net.to(torch.float16).save_pretrained(os.path.join(out, f"controlnet-{name}"), safe_serialization=True)
            net.to(torch.float32)
        else:
            net.save_pretrained(os.path.join(out, f"controlnet-{name}"), safe_serialization=True)
        nets[name] = net
    assert len(nets["a"].controlnet_down_blocks) == 4

    g = torch.Generator().manual_seed(37)
    control_a = line_art(g, [("row", 6, 2, 22), ("col", 12, 4, 28), ("diag", 3, 1, 20), ("circle", 20, 12, 6.5)])
    control_b = line_art(g, [("row", 25, 0, 24), ("col", 4, 0, 32), ("circle", 10, 14, 4.0), ("diag", 14, 0, 18)])
    latent_g = torch.Generator().manual_seed(53)
    txt2img_latents = torch.randn((1, 4, 8, 6), generator=latent_g)
    img2img_noise = torch.randn((1, 4, 8, 6), generator=latent_g)
    guess_latents = torch.randn((1, 4, 8, 6), generator=latent_g)
    multi_latents = torch.randn((1, 4, 8, 6), generator=latent_g)
    nocfg_latents = torch.randn((1, 4, 8, 6), generator=latent_g)

    prompt, negative = "a watercolor painting of a cat", "blurry"
    common = dict(prompt=prompt, negative_prompt=negative, num_inference_steps=5, output_type="np")
    components = dict(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, safety_checker=None,
                      feature_extractor=None, requires_safety_checker=False)
    metadata = {"scheduler": json.dumps(scheduler_config), "prompt": prompt, "negative_prompt": negative, "steps": "5"}
    tensors = {}

    def run(key, cls, controlnet_names, settings, **extra):
        controlnets = [nets[n] for n in controlnet_names]
        scheduler = DPMSolverMultistepScheduler(**scheduler_config)
        controlnet = controlnets[0] if len(controlnets) == 1 else controlnets
        pipe = cls(controlnet=controlnet, scheduler=scheduler, **components)
        pipe.set_progress_bar_config(disable=True)
        records, handles = record_calls(controlnets)
        timesteps = []

        def on_step(pipe_, i, t, kwargs):
            timesteps.append(int(t))
            return {}

        with torch.no_grad():
            image = pipe(**common, **settings, **extra, callback_on_step_end=on_step).images
        for h in handles:
            h.remove()
        image = torch.from_numpy(image).permute(0, 3, 1, 2).contiguous()
        entry = dict(pipeline=cls.__name__, controlnets=[f"controlnet-{n}" for n in controlnet_names], **settings,
                     timesteps=timesteps,
                     controlnet_scales=[[r["scale"] for r in record] for record in records],
                     controlnet_batch=[dict(sample=record[0]["sample"], controlnet_cond=record[0]["cond"][0],
                                            encoder_hidden_states=record[0]["text"]) for record in records])
        assert all(len({(r["sample"], r["cond"], r["text"]) for r in record}) == 1 for record in records)
        metadata[key] = json.dumps(entry)
        print(f"{key}: timesteps {timesteps}, ControlNet scales {entry['controlnet_scales']}, "
              f"batches {entry['controlnet_batch']}, image {image.min():.3f}..{image.max():.3f}, "
              f"clamped {((image == 0) | (image == 1)).float().mean():.2f}")
        return image, records

    # a. txt2img
    settings = dict(height=32, width=24, guidance_scale=7.5, controlnet_conditioning_scale=0.8,
                    control_guidance_start=0.0, control_guidance_end=0.8)
    image, records = run("txt2img", StableDiffusionControlNetPipeline, ["a"], settings,
                         image=control_a.clone(), latents=txt2img_latents.clone())
    assert [r["scale"] for r in records[0]] == [0.8, 0.8, 0.8, 0.8, 0.0]
    assert all(torch.equal(r["cond_tensor"], torch.cat([control_a] * 2)) for r in records[0])
    tensors.update(txt2img_latents=txt2img_latents, txt2img_control=control_a, txt2img_image=image)
    txt2img_image = image

    # b. img2img from the txt2img image: posterior mean, fixed noise.
    noise_calls = []

    def fixed_noise(shape, generator=None, device=None, dtype=None, layout=None):
        noise_calls.append(tuple(shape))
        return img2img_noise.clone()

    encoded = []
    original_encode, original_sample, original_randn = vae.encode, vae_module.DiagonalGaussianDistribution.sample, \
        cn_i2i_module.randn_tensor

    def recording_encode(x, *args, **kwargs):
        encoded.append(x.clone())
        return original_encode(x, *args, **kwargs)

    cn_i2i_module.randn_tensor = fixed_noise
    vae_module.DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mean
    vae.encode = recording_encode
    try:
        settings = dict(strength=0.6, guidance_scale=5.0, controlnet_conditioning_scale=1.0,
                        control_guidance_start=0.25, control_guidance_end=1.0)
        image, records = run("img2img", StableDiffusionControlNetImg2ImgPipeline, ["a"], settings,
                             image=txt2img_image.clone(), control_image=control_a.clone())
    finally:
        cn_i2i_module.randn_tensor = original_randn
        vae_module.DiagonalGaussianDistribution.sample = original_sample
        del vae.encode
    assert noise_calls == [(1, 4, 8, 6)] and len(encoded) == 1, (noise_calls, len(encoded))
    source = txt2img_image * 2.0 - 1.0
    assert torch.equal(encoded[0], source)
    assert [r["scale"] for r in records[0]] == [0.0, 1.0, 1.0]
    tensors.update(img2img_noise=img2img_noise, img2img_source=source, img2img_control=control_a,
                   img2img_image=image)

    # c. guess mode, with ControlNet 1.1's 0.825 powers in place of diffusers' logspace.
    settings = dict(height=32, width=24, guidance_scale=7.5, controlnet_conditioning_scale=1.0, guess_mode=True)
    with cn11_guess_scales(len(nets["a"].controlnet_down_blocks) + 1) as calls:
        image, records = run("guess", StableDiffusionControlNetPipeline, ["a"], settings,
                             image=control_a.clone(), latents=guess_latents.clone())
    assert calls == [5] * 5, calls
    assert all(r["sample"] == 1 and r["text"] == 1 and torch.equal(r["cond_tensor"], control_a) for r in records[0])
    metadata["guess"] = json.dumps(dict(json.loads(metadata["guess"]), patched_guess_scales=[
        0.825 ** (4 - i) for i in range(5)]))
    tensors.update(guess_latents=guess_latents, guess_control=control_a, guess_image=image)
    with torch.no_grad():  # how much the patch matters (diffusers' own logspace scales), for the log only
        scheduler = DPMSolverMultistepScheduler(**scheduler_config)
        pipe = StableDiffusionControlNetPipeline(controlnet=nets["a"], scheduler=scheduler, **components)
        pipe.set_progress_bar_config(disable=True)
        unpatched = pipe(**common, **settings, image=control_a.clone(), latents=guess_latents.clone()).images
    print(f"guess: diffusers' logspace scales would differ by up to "
          f"{(torch.from_numpy(unpatched).permute(0, 3, 1, 2) - image).abs().max():.4f}")

    # d. Multi-ControlNet.
    settings = dict(height=32, width=24, guidance_scale=7.5, controlnet_conditioning_scale=[0.7, 0.5],
                    control_guidance_start=[0.0, 0.2], control_guidance_end=[1.0, 0.6])
    image, records = run("multi", StableDiffusionControlNetPipeline, ["a", "b"], settings,
                         image=[control_a.clone(), control_b.clone()], latents=multi_latents.clone())
    assert [r["scale"] for r in records[0]] == [0.7] * 5 and [r["scale"] for r in records[1]] == [0.0, 0.5, 0.5, 0, 0]
    tensors.update(multi_latents=multi_latents, multi_control_a=control_a, multi_control_b=control_b,
                   multi_image=image)

    # e. No classifier-free guidance (guidance 1: one UNet row per step, the ControlNet on that row alone), plain and
    # in guess mode (the 0.825 scales; no zero half without guidance).
    settings = dict(height=32, width=24, guidance_scale=1.0, controlnet_conditioning_scale=0.8,
                    control_guidance_start=0.0, control_guidance_end=0.8)
    image, records = run("nocfg", StableDiffusionControlNetPipeline, ["a"], settings,
                         image=control_a.clone(), latents=nocfg_latents.clone())
    assert all(r["sample"] == 1 and r["text"] == 1 for r in records[0])
    tensors.update(nocfg_latents=nocfg_latents, nocfg_control=control_a, nocfg_image=image)
    settings = dict(height=32, width=24, guidance_scale=1.0, controlnet_conditioning_scale=1.0, guess_mode=True)
    with cn11_guess_scales(len(nets["a"].controlnet_down_blocks) + 1) as calls:
        image, records = run("nocfg_guess", StableDiffusionControlNetPipeline, ["a"], settings,
                             image=control_a.clone(), latents=nocfg_latents.clone())
    assert calls == [5] * 5, calls
    assert all(r["sample"] == 1 and r["text"] == 1 for r in records[0])
    tensors.update(nocfg_guess_latents=nocfg_latents, nocfg_guess_control=control_a, nocfg_guess_image=image)

    save(os.path.join(out, "io.safetensors"), tensors, metadata)


def main():
    hide_broken_torchvision()
    diffusers_folders()
    single_file()
    pipelines()


if __name__ == "__main__":
    main()
