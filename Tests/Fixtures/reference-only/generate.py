#!/usr/bin/env python3
"""Builds the reference-only parity fixtures: the training-free "reference-only" method of the diffusers community
pipeline examples/community/stable_diffusion_reference.py (StableDiffusionReferencePipeline; its ControlNet sibling
examples/community/stable_diffusion_controlnet_reference.py for the run with a ControlNet), on the tiny SD1 stack of
../diffusion (unet-sd1, vae, clip-sd1, tokenizer) and ../controlnet/pipeline/controlnet-a.

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt:
    python Tests/Fixtures/reference-only/generate.py
Everything is seeded. A file whose tensors and metadata are already on disk is not rewritten.

RESTATED, not imported: the community pipeline is not in the diffusers package. Its hacked forwards are restated
below (ReferenceHooks) on top of diffusers' own UNet2DConditionModel and blocks, as the pipeline installs them (it
replaces `forward` on the module instances):
- BasicTransformerBlock (norm_type "layer_norm", the only SD1 case): WRITE appends norm1(x) to the block's bank and
  runs plain self-attention; READ, for a block whose attn_weight < attention_auto_machine_weight, runs attn1 with
  keys/values from cat([norm1(x)] + bank, dim=1) (out_uc), copies it to out_c and, with CFG and style_fidelity > 0,
  replaces out_c's unconditional rows (uc_mask = the first half of the batch) by plain self-attention on those rows;
  attn_output = style_fidelity * out_c + (1 - style_fidelity) * out_uc; then the bank is cleared. Blocks are sorted by
  -norm1 width (a stable sort of the depth-first module order: down, up, mid), attn_weight = i / count.
- AdaIN: mid_block (gn_weight 0, on the block's whole output), down_blocks[w] (gn_weight 1 - w / len), up_blocks[w]
  (w / len), each then x2; in CrossAttnDown/DownBlock2D/CrossAttnUp/UpBlock2D after every resnet(+attention) layer
  (down blocks before the output state is kept, up blocks before the upsampler). WRITE (if gn_auto_machine_weight
  >= gn_weight) stores torch.var_mean(x, dim=(2, 3), correction=0) per layer; READ (if the bank is not empty):
  std = max(var, 1e-6) ** 0.5, x_uc = (x - mean) / std * std_acc + mean_acc (the bank averaged), x_c = x_uc with the
  unconditional rows set back to x (CFG and style_fidelity > 0), x = style_fidelity * x_c + (1 - style_fidelity) *
  x_uc; banks cleared.
- The denoising loop (pipeline __call__ step 10): per step, latent_model_input = scale_model_input(cat([latents] * 2));
  [ControlNet sibling: the ControlNet on latent_model_input, its residuals for the READ pass only]; fresh noise
  (randn_tensor from the generator), ref_xt = scheduler.add_noise(ref_latents, noise, t), cat([ref_xt] * 2),
  scale_model_input; the UNet in WRITE mode on ref_xt with the same prompt_embeds; the UNet in READ mode on the
  latents; CFG; scheduler.step.
The restated loop, with no hooks installed, equals diffusers' StableDiffusionPipeline on the same latents (asserted),
and a WRITE pass changes nothing in the UNet's output (asserted).

PATCHED, as the other fixtures do:
- The reference's latent: the pipeline takes `vae.encode(ref).latent_dist.sample(generator)` * scaling_factor; here
  the posterior MEAN (what the engine uses, as for img2img sources).
- The per-step reference noise is drawn from a seeded generator in advance and replayed (saved as ref_noise, one
  [1, 4, 8, 6] per step), so that a test can feed the same noise; the initial latents are given.
- The reference image is given as a tensor in -1..1 at the output size (the pipeline lanczos-resizes a PIL image to
  the output size and normalises it; resizing is the engine's job).

Files
1. unet/io.safetensors -- one READ pass after one WRITE pass of the tiny SD1 UNet at timestep 500 (attention blocks:
   down_blocks.0.attentions.0 (width 32), up_blocks.1.attentions.0/1 (32), mid_block.attentions.0 (64); sorted order
   in metadata "attention_order"). Tensors: write_sample [2,4,8,6] (the noised reference, rows different), sample
   [2,4,8,6], encoder_hidden_states [2,5,32] (row 0 the unconditional text), timestep [1], output_plain (the UNet
   with no hooks), and output_<case> for each case in metadata "cases" (JSON: options per case, with `cfg`: whether
   the first half of the batch is the unconditional one).
2. pipeline/io.safetensors -- whole txt2img runs, 32x24 (8x6 latents), 5 steps, DPM++ 2M Karras (the scheduler
   config of ../diffusion pipeline()), guidance 7.5, prompt "a watercolor painting of a cat", negative "blurry".
   Tensors: reference [1,3,32,24] in -1..1, reference_latents [1,4,8,6] (posterior mean * 0.18215), latents
   [1,4,8,6], ref_noise [5,1,4,8,6], control [1,3,32,24] (../controlnet's txt2img control image), image_<run>
   [1,3,32,24] in 0..1 for each run in metadata "runs", image_plain (no reference, no ControlNet) and
   image_control_only (the ControlNet alone).
"""
import importlib.util
import json
import os
import sys
import types

import torch
import torch.nn.functional as F
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision  # noqa: E402
DIFFUSION = os.path.join(HERE, "..", "diffusion")
CONTROLNET = os.path.join(HERE, "..", "controlnet", "pipeline")
TIMESTEP = 500.0


# --- the community pipeline's hacked forwards, restated -------------------------------------------------------------

class ReferenceHooks:
    """Installs the reference-only forwards on a diffusers UNet2DConditionModel (stable_diffusion_reference.py, step 9
    of __call__). `mode` is "write" or "read", as the pipeline's MODE."""

    def __init__(self, unet, attention_auto_machine_weight=1.0, gn_auto_machine_weight=1.0, style_fidelity=0.5,
                 reference_attn=True, reference_adain=True, do_classifier_free_guidance=True, batch_size=1):
        from diffusers.models.attention import BasicTransformerBlock
        from diffusers.models.unets.unet_2d_blocks import (CrossAttnDownBlock2D, CrossAttnUpBlock2D, DownBlock2D,
                                                           UpBlock2D)

        assert reference_attn or reference_adain
        self.mode = "write"
        hooks = self
        uc_mask = torch.tensor([1] * batch_size + [0] * batch_size).bool()
        eps = 1e-6

        def adain(module, i, hidden_states):
            """The WRITE / READ tail every hacked block forward repeats (i: the layer in the block)."""
            if hooks.mode == "write":
                if gn_auto_machine_weight >= module.gn_weight:
                    var, mean = torch.var_mean(hidden_states, dim=(2, 3), keepdim=True, correction=0)
                    module.mean_bank.append([mean])
                    module.var_bank.append([var])
            if hooks.mode == "read":
                if len(module.mean_bank) > 0 and len(module.var_bank) > 0:
                    var, mean = torch.var_mean(hidden_states, dim=(2, 3), keepdim=True, correction=0)
                    std = torch.maximum(var, torch.zeros_like(var) + eps) ** 0.5
                    mean_acc = sum(module.mean_bank[i]) / float(len(module.mean_bank[i]))
                    var_acc = sum(module.var_bank[i]) / float(len(module.var_bank[i]))
                    std_acc = torch.maximum(var_acc, torch.zeros_like(var_acc) + eps) ** 0.5
                    uc = (((hidden_states - mean) / std) * std_acc) + mean_acc
                    c = uc.clone()
                    if do_classifier_free_guidance and style_fidelity > 0:
                        c[uc_mask] = hidden_states[uc_mask]
                    hidden_states = style_fidelity * c + (1.0 - style_fidelity) * uc
            return hidden_states

        def transformer_block_forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                                      encoder_attention_mask=None, timestep=None, cross_attention_kwargs=None,
                                      class_labels=None, **kwargs):
            assert self.norm_type == "layer_norm" and not self.only_cross_attention and self.pos_embed is None
            cross_attention_kwargs = cross_attention_kwargs or {}
            norm_hidden_states = self.norm1(hidden_states)
            if hooks.mode == "write":
                self.bank.append(norm_hidden_states.detach().clone())
                attn_output = self.attn1(norm_hidden_states, attention_mask=attention_mask, **cross_attention_kwargs)
            if hooks.mode == "read":
                if attention_auto_machine_weight > self.attn_weight:
                    attn_output_uc = self.attn1(norm_hidden_states,
                                                encoder_hidden_states=torch.cat([norm_hidden_states] + self.bank, dim=1),
                                                **cross_attention_kwargs)
                    attn_output_c = attn_output_uc.clone()
                    if do_classifier_free_guidance and style_fidelity > 0:
                        attn_output_c[uc_mask] = self.attn1(norm_hidden_states[uc_mask],
                                                            encoder_hidden_states=norm_hidden_states[uc_mask],
                                                            **cross_attention_kwargs)
                    attn_output = style_fidelity * attn_output_c + (1.0 - style_fidelity) * attn_output_uc
                    self.bank.clear()
                else:
                    attn_output = self.attn1(norm_hidden_states, attention_mask=attention_mask,
                                             **cross_attention_kwargs)
            hidden_states = attn_output + hidden_states
            norm_hidden_states = self.norm2(hidden_states)
            attn_output = self.attn2(norm_hidden_states, encoder_hidden_states=encoder_hidden_states,
                                     attention_mask=encoder_attention_mask, **cross_attention_kwargs)
            hidden_states = attn_output + hidden_states
            norm_hidden_states = self.norm3(hidden_states)
            return self.ff(norm_hidden_states) + hidden_states

        def mid_forward(self, *args, **kwargs):
            x = self.original_forward(*args, **kwargs)
            if hooks.mode == "write":
                if gn_auto_machine_weight >= self.gn_weight:
                    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
                    self.mean_bank.append(mean)
                    self.var_bank.append(var)
            if hooks.mode == "read":
                if len(self.mean_bank) > 0 and len(self.var_bank) > 0:
                    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
                    std = torch.maximum(var, torch.zeros_like(var) + eps) ** 0.5
                    mean_acc = sum(self.mean_bank) / float(len(self.mean_bank))
                    var_acc = sum(self.var_bank) / float(len(self.var_bank))
                    std_acc = torch.maximum(var_acc, torch.zeros_like(var_acc) + eps) ** 0.5
                    x_uc = (((x - mean) / std) * std_acc) + mean_acc
                    x_c = x_uc.clone()
                    if do_classifier_free_guidance and style_fidelity > 0:
                        x_c[uc_mask] = x[uc_mask]
                    x = style_fidelity * x_c + (1.0 - style_fidelity) * x_uc
                self.mean_bank = []
                self.var_bank = []
            return x

        def down_forward(self, hidden_states, temb=None, encoder_hidden_states=None, attention_mask=None,
                         cross_attention_kwargs=None, encoder_attention_mask=None, **kwargs):
            output_states = ()
            attentions = getattr(self, "attentions", None) or [None] * len(self.resnets)
            for i, (resnet, attn) in enumerate(zip(self.resnets, attentions)):
                hidden_states = resnet(hidden_states, temb)
                if attn is not None:
                    hidden_states = attn(hidden_states, encoder_hidden_states=encoder_hidden_states,
                                         cross_attention_kwargs=cross_attention_kwargs, attention_mask=attention_mask,
                                         encoder_attention_mask=encoder_attention_mask, return_dict=False)[0]
                hidden_states = adain(self, i, hidden_states)
                output_states = output_states + (hidden_states,)
            if hooks.mode == "read":
                self.mean_bank = []
                self.var_bank = []
            if self.downsamplers is not None:
                for downsampler in self.downsamplers:
                    hidden_states = downsampler(hidden_states)
                output_states = output_states + (hidden_states,)
            return hidden_states, output_states

        def up_forward(self, hidden_states, res_hidden_states_tuple, temb=None, encoder_hidden_states=None,
                       cross_attention_kwargs=None, upsample_size=None, attention_mask=None,
                       encoder_attention_mask=None, **kwargs):
            attentions = getattr(self, "attentions", None) or [None] * len(self.resnets)
            for i, (resnet, attn) in enumerate(zip(self.resnets, attentions)):
                res_hidden_states = res_hidden_states_tuple[-1]
                res_hidden_states_tuple = res_hidden_states_tuple[:-1]
                hidden_states = torch.cat([hidden_states, res_hidden_states], dim=1)
                hidden_states = resnet(hidden_states, temb)
                if attn is not None:
                    hidden_states = attn(hidden_states, encoder_hidden_states=encoder_hidden_states,
                                         cross_attention_kwargs=cross_attention_kwargs, attention_mask=attention_mask,
                                         encoder_attention_mask=encoder_attention_mask, return_dict=False)[0]
                hidden_states = adain(self, i, hidden_states)
            if hooks.mode == "read":
                self.mean_bank = []
                self.var_bank = []
            if self.upsamplers is not None:
                for upsampler in self.upsamplers:
                    hidden_states = upsampler(hidden_states, upsample_size)
            return hidden_states

        self.attention_order = []
        if reference_attn:
            modules = [(name, m) for name, m in torch_dfs(unet) if isinstance(m, BasicTransformerBlock)]
            modules = sorted(modules, key=lambda x: -x[1].norm1.normalized_shape[0])
            for i, (name, module) in enumerate(modules):
                module.forward = types.MethodType(transformer_block_forward, module)
                module.bank = []
                module.attn_weight = float(i) / float(len(modules))
                self.attention_order.append(name)
        self.gn_weights = {}
        if reference_adain:
            gn_modules = [("mid_block", unet.mid_block)]
            unet.mid_block.gn_weight = 0
            for w, module in enumerate(unet.down_blocks):
                module.gn_weight = 1.0 - float(w) / float(len(unet.down_blocks))
                gn_modules.append((f"down_blocks.{w}", module))
            for w, module in enumerate(unet.up_blocks):
                module.gn_weight = float(w) / float(len(unet.up_blocks))
                gn_modules.append((f"up_blocks.{w}", module))
            for i, (name, module) in enumerate(gn_modules):
                if getattr(module, "original_forward", None) is None:
                    module.original_forward = module.forward
                if i == 0:
                    module.forward = types.MethodType(mid_forward, module)
                elif isinstance(module, (CrossAttnDownBlock2D, DownBlock2D)):
                    module.forward = types.MethodType(down_forward, module)
                elif isinstance(module, (CrossAttnUpBlock2D, UpBlock2D)):
                    module.forward = types.MethodType(up_forward, module)
                else:
                    raise AssertionError(f"{name}: {type(module).__name__}")
                module.mean_bank = []
                module.var_bank = []
                module.gn_weight *= 2
                self.gn_weights[name] = module.gn_weight


def save(name, tensors, metadata=None):
    fixture_io.save(os.path.join(HERE, name), tensors, metadata, root=HERE)


def torch_dfs(model, prefix=""):
    """The pipeline's torch_dfs (the module and all its children, depth first, in registration order), with names."""
    result = [(prefix, model)]
    for name, child in model.named_children():
        result += torch_dfs(child, f"{prefix}.{name}" if prefix else name)
    return result


# --- helpers ------------------------------------------------------------------------------------------------------

def diffusion_fixtures():
    """Tests/Fixtures/diffusion/generate.py as a module (for SD_BETAS)."""
    spec = importlib.util.spec_from_file_location("diffusion_fixtures", os.path.join(DIFFUSION, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    state = torch.random.get_rng_state()
    spec.loader.exec_module(module)
    torch.random.set_rng_state(state)
    return module


def load_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(os.path.join(DIFFUSION, "unet-sd1"), low_cpu_mem_usage=False).eval()


def max_diff(a, b):
    return (a - b).abs().max().item()


# --- 1. one UNet pass ---------------------------------------------------------------------------------------------

UNET_CASES = {
    "attn": dict(reference_attn=True, reference_adain=False, style_fidelity=0.5),
    "adain": dict(reference_attn=False, reference_adain=True, style_fidelity=0.5),
    "both": dict(reference_attn=True, reference_adain=True, style_fidelity=0.5),
    "both_sf0": dict(reference_attn=True, reference_adain=True, style_fidelity=0.0),
    "both_sf1": dict(reference_attn=True, reference_adain=True, style_fidelity=1.0),
    # attention in the two first-sorted blocks only (weights 0 and 0.25 < 0.5); AdaIN everywhere (gn_weight <= 2)
    "gated": dict(reference_attn=True, reference_adain=True, style_fidelity=0.5, attention_auto_machine_weight=0.5,
                  gn_auto_machine_weight=2.0),
    # AdaIN at the mid block only (gn_weight 0 <= 0.4 < 1), no attention block (0.0 is not > 0)
    "sparse": dict(reference_attn=True, reference_adain=True, style_fidelity=0.5, attention_auto_machine_weight=0.0,
                   gn_auto_machine_weight=0.4),
    # guidance_scale <= 1: no unconditional rows
    "nocfg": dict(reference_attn=True, reference_adain=True, style_fidelity=0.5, do_classifier_free_guidance=False),
}


def unet_pass():
    base = load_unet()
    g = torch.Generator().manual_seed(131)
    write_sample = torch.randn((2, 4, 8, 6), generator=g)
    sample = torch.randn((2, 4, 8, 6), generator=g)
    context = torch.randn((2, 5, base.config.cross_attention_dim), generator=g)
    t = torch.tensor([TIMESTEP])
    tensors = {"write_sample": write_sample, "sample": sample, "encoder_hidden_states": context, "timestep": t}
    with torch.no_grad():
        plain = base(sample, t, encoder_hidden_states=context).sample
        plain_write = base(write_sample, t, encoder_hidden_states=context).sample
    tensors["output_plain"] = plain
    cases, order = {}, None
    for name, options in UNET_CASES.items():
        unet = load_unet()
        hooks = ReferenceHooks(unet, **options)
        with torch.no_grad():
            hooks.mode = "write"
            written = unet(write_sample, t, encoder_hidden_states=context).sample
            assert torch.equal(written, plain_write), f"{name}: the write pass changed the output"
            hooks.mode = "read"
            out = unet(sample, t, encoder_hidden_states=context).sample
        if hooks.attention_order:
            order = hooks.attention_order
        full = dict(attention_auto_machine_weight=1.0, gn_auto_machine_weight=1.0, do_classifier_free_guidance=True)
        full.update(options)
        cases[name] = dict(reference_attn=full["reference_attn"], reference_adain=full["reference_adain"],
                           style_fidelity=full["style_fidelity"],
                           attention_auto_machine_weight=full["attention_auto_machine_weight"],
                           gn_auto_machine_weight=full["gn_auto_machine_weight"],
                           cfg=full["do_classifier_free_guidance"], gn_weights=hooks.gn_weights)
        print(f"unet {name}: differs from the plain UNet by up to {max_diff(out, plain):.4f}; gn_weights {hooks.gn_weights}")
        if name != "sparse":
            assert max_diff(out, plain) > 1e-2
        tensors[f"output_{name}"] = out
    print(f"attention order (sorted by width): {order}")
    # Cases that must differ from one another, so that each option is seen by the comparison.
    for a, b in [("attn", "both"), ("adain", "both"), ("both", "both_sf0"), ("both", "both_sf1"), ("both", "gated"),
                 ("both", "nocfg"), ("sparse", "both")]:
        assert max_diff(tensors[f"output_{a}"], tensors[f"output_{b}"]) > 1e-3, (a, b)
    save("unet/io.safetensors", tensors, {"cases": json.dumps(cases), "attention_order": json.dumps(order),
                                          "timestep": str(TIMESTEP)})


# --- 2. whole runs ------------------------------------------------------------------------------------------------

def pipelines():
    from diffusers import (AutoencoderKL, ControlNetModel, DPMSolverMultistepScheduler, StableDiffusionPipeline)
    from transformers import CLIPTextModel, CLIPTokenizer

    sd_betas = diffusion_fixtures().SD_BETAS
    vae = AutoencoderKL.from_pretrained(os.path.join(DIFFUSION, "vae")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(DIFFUSION, "clip-sd1")).eval()
    folder = os.path.join(DIFFUSION, "tokenizer")
    tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                        model_max_length=77)
    controlnet = ControlNetModel.from_pretrained(os.path.join(CONTROLNET, "controlnet-a")).eval()
    with safe_open(os.path.join(CONTROLNET, "io.safetensors"), "pt") as f:
        control = f.get_tensor("txt2img_control")
    scheduler_config = dict(**sd_betas, steps_offset=1, use_karras_sigmas=True, algorithm_type="dpmsolver++",
                            solver_order=2)
    prompt, negative = "a watercolor painting of a cat", "blurry"
    steps, guidance, height, width = 5, 7.5, 32, 24

    g = torch.Generator().manual_seed(137)
    latents = torch.randn((1, 4, 8, 6), generator=g)
    ref_noise = torch.randn((steps, 1, 4, 8, 6), generator=g)
    # A smooth reference picture in -1..1: a 4x3 random colour grid, bilinear up to 32x24, plus a little grain.
    coarse = torch.rand((1, 3, 4, 3), generator=g) * 2 - 1
    reference = (F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
                 + 0.1 * torch.randn((1, 3, height, width), generator=g)).clamp(-1, 1)
    with torch.no_grad():
        ref_latents = vae.encode(reference).latent_dist.mean * vae.config.scaling_factor  # PATCH: mean, not sample()

    def run(options=None, with_control=False, control_scale=0.8):
        """The community pipeline's __call__ loop restated (see the module docstring); options None: no hooks."""
        unet = load_unet()
        hooks = ReferenceHooks(unet, **options) if options is not None else None
        scheduler = DPMSolverMultistepScheduler(**scheduler_config)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        timesteps_run = []
        with torch.no_grad():
            positive, negative_embeds = pipe.encode_prompt(prompt, "cpu", 1, True, negative)
            prompt_embeds = torch.cat([negative_embeds, positive])
            scheduler.set_timesteps(steps)
            x = latents.clone() * scheduler.init_noise_sigma
            for i, t in enumerate(scheduler.timesteps):
                timesteps_run.append(int(t))
                model_input = scheduler.scale_model_input(torch.cat([x] * 2), t)
                residuals = {}
                if with_control:
                    down, mid = controlnet(model_input, t, encoder_hidden_states=prompt_embeds,
                                           controlnet_cond=torch.cat([control] * 2), conditioning_scale=control_scale,
                                           guess_mode=False, return_dict=False)
                    residuals = dict(down_block_additional_residuals=down, mid_block_additional_residual=mid)
                if hooks is not None:
                    ref_xt = scheduler.add_noise(ref_latents, ref_noise[i], t.reshape(1))
                    alpha, sigma = scheduler._sigma_to_alpha_sigma_t(scheduler.sigmas[i])
                    assert torch.allclose(ref_xt, alpha * ref_latents + sigma * ref_noise[i], atol=1e-6), "add_noise"
                    ref_xt = scheduler.scale_model_input(torch.cat([ref_xt] * 2), t)
                    hooks.mode = "write"
                    unet(ref_xt, t, encoder_hidden_states=prompt_embeds, return_dict=False)
                    hooks.mode = "read"
                noise_pred = unet(model_input, t, encoder_hidden_states=prompt_embeds, return_dict=False,
                                  **residuals)[0]
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + guidance * (cond - uncond)
                x = scheduler.step(noise_pred, t, x, return_dict=False)[0]
            image = vae.decode(x / vae.config.scaling_factor, return_dict=False)[0]
            image = (image / 2 + 0.5).clamp(0, 1)
        return image, timesteps_run, pipe

    # The restated loop is diffusers' own txt2img loop when nothing is hooked.
    plain, timesteps_run, pipe = run()
    with torch.no_grad():
        pipe.scheduler = DPMSolverMultistepScheduler(**scheduler_config)
        own = pipe(prompt, negative_prompt=negative, height=height, width=width, num_inference_steps=steps,
                   guidance_scale=guidance, latents=latents.clone(), output_type="np").images
    own = torch.from_numpy(own).permute(0, 3, 1, 2)
    print(f"restated loop vs StableDiffusionPipeline: {max_diff(own, plain):.2e}")
    assert max_diff(own, plain) <= 1e-6
    assert len(set(timesteps_run)) == steps, timesteps_run  # add_noise looks the step up by its timestep

    runs = {
        "defaults": dict(options=dict(), with_control=False),
        "attn_sf1": dict(options=dict(reference_adain=False, style_fidelity=1.0), with_control=False),
        "controlnet": dict(options=dict(), with_control=True),
    }
    tensors = {"reference": reference, "reference_latents": ref_latents, "latents": latents, "ref_noise": ref_noise,
               "control": control, "image_plain": plain}
    meta_runs = {}
    for name, spec in runs.items():
        image, _, _ = run(spec["options"], spec["with_control"])
        full = dict(attention_auto_machine_weight=1.0, gn_auto_machine_weight=1.0, style_fidelity=0.5,
                    reference_attn=True, reference_adain=True)
        full.update(spec["options"])
        entry = dict(full, controlnet="controlnet-a" if spec["with_control"] else None,
                     controlnet_conditioning_scale=0.8 if spec["with_control"] else None)
        meta_runs[name] = entry
        tensors[f"image_{name}"] = image
        print(f"pipeline {name}: differs from the plain run by up to {max_diff(image, plain):.3f}")
        assert max_diff(image, plain) > 1e-2
    control_only, _, _ = run(None, True)
    tensors["image_control_only"] = control_only
    assert max_diff(tensors["image_controlnet"], control_only) > 1e-2
    save("pipeline/io.safetensors", tensors, {
        "scheduler": json.dumps(scheduler_config), "prompt": prompt, "negative_prompt": negative, "steps": str(steps),
        "guidance": str(guidance), "height": str(height), "width": str(width), "timesteps": json.dumps(timesteps_run),
        "runs": json.dumps(meta_runs), "controlnet": "../../controlnet/pipeline/controlnet-a",
        "reference_latents": "vae.encode(reference).latent_dist.mean * scaling_factor (the pipeline samples)"})


def main():
    hide_broken_torchvision()
    torch.manual_seed(0)
    unet_pass()
    pipelines()


if __name__ == "__main__":
    main()
