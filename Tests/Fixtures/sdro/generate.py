#!/usr/bin/env python3
"""Builds the Stable Diffusion Reference Only (SDRO) parity fixtures: a tiny model in the published folder layout, one
UNet pass with a blueprint, a whole reference-only run, and the blueprint binarisation of the reference app.

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt plus
Tests/Fixtures/sdro/requirements.txt (OpenCV, for cv2.adaptiveThreshold only):
    python Tests/Fixtures/sdro/generate.py
A file whose tensors and metadata are already on disk is not rewritten (safetensors orders a header with metadata
differently from run to run).

SDRO (aihao2000/stable-diffusion-reference-only @9fac5ec) is not in diffusers. What it is, and what is restated here:
- The UNet, `UNet2DDobuleConditionModel` (src/stable_diffusion_reference_only/models/unet_2d_dobule_condition.py): a
  diffusers UNet2DConditionModel built from the SD2.1 UNet config (utility/gen_init_stable_diffusion_reference_only.ipynb
  copies every weight of the SD2.1 UNet into it) plus `controlnet_cond_embedding`, a ControlNetConditioningEmbedding
  (L56-109, the same class as diffusers' ControlNet hint encoder: conv_in, pairs of a size-keeping and a stride-2 3x3
  convolution, SiLU after each, conv_out to block_out_channels[0]). Its forward (L1063-1066) is
      sample = self.conv_in(sample); sample = sample + self.controlnet_cond_embedding(controlnet_cond)
  once, before the down blocks; everything else is diffusers' UNet. Restated here as diffusers' UNet2DConditionModel
  with a forward hook on conv_in that adds the embedding (asserted to run exactly once per pass). The weights are saved
  as one diffusers `unet/` folder: the UNet's own keys plus `controlnet_cond_embedding.{conv_in, blocks.N, conv_out}`,
  as the published diffusion_pytorch_model.safetensors has them.
- The pipeline, `StableDiffusionReferenceOnlyPipeline` (pipelines/pipeline_stable_diffusion_reference_only.py),
  restated in `reference_only_pipeline` below for what runs with app.py's arguments:
    context = CLIPVisionModel(clip_image_processor(reference).pixel_values).last_hidden_state  (L170-217; no
              projection, no post_layernorm, no text encoder)
    blueprint = VaeImageProcessor(vae_scale_factor, do_convert_rgb=True, do_normalize=False).preprocess(image) (L128,
              L291-324): RGB in 0..1, size rounded down to multiples of the VAE scale (a no-op here)
    scheduler.set_timesteps(steps); latents = randn * scheduler.init_noise_sigma (L326-357, L430)
    per timestep t (L455-489), one UNet call, no classifier-free guidance (L415 commented out):
        prediction = unet(scheduler.scale_model_input(latents, t), t, context, controlnet_cond=blueprint)
        latents = scheduler.step(prediction, t, latents).prev_sample
    image = VaeImageProcessor.postprocess(vae.decode(latents / scaling_factor)) -> (x / 2 + 0.5).clamp(0, 1)
  app.py L22-27 loads the pipeline and swaps in UniPCMultistepScheduler.from_config(pipeline.scheduler.config); the
  folder's scheduler is the DDPMScheduler the notebook took from SD2.1 (v_prediction).
- The blueprint (app.py L47-57, get_line_art, then color_inversion L41-44; the training script does the same, L704-760):
  grey = cv2.cvtColor(RGB2GRAY); cv2.adaptiveThreshold(grey, 255, ADAPTIVE_THRESH_MEAN_C, THRESH_BINARY, blockSize=5,
  C=7); GRAY2RGB; 255 - x.

Tiny model (folder model/, the published layout: model_index.json, unet/, vae/, image_encoder/, scheduler/,
clip_image_processor/):
- image_encoder: transformers CLIPVisionModel, CLIP ViT-L's layout (quick GELU, pre-layernorm) at hidden 32, 2 layers,
  4 heads, 32x32 images in 8x8 patches: last_hidden_state [N, 17, 32].
- clip_image_processor: CLIPImageProcessor with shortest_edge 32 and a 32x32 centre crop (CLIP's mean and std); with
  no torchvision here transformers runs its PIL backend (bicubic resize), as the transformers of SDRO's time did.
- unet: SD2.x layout: block_out_channels (16, 32, 32), one layer per block, CrossAttn/CrossAttn/Down, per-block head
  counts (2, 4, 4) given as attention_head_dim, linear projections, upcast attention, cross_attention_dim 32 (the
  vision hidden width, as SD2.1's 1024 is CLIP ViT-L's), norm groups 8; blueprint encoder widths (4, 8, 8, 16): three
  stride-2 convolutions, 8x, as the real (16, 32, 96, 256).
- vae: AutoencoderKL with four levels (8x, as SD's), block_out_channels (8, 16, 16, 16), groups 4, scaling 0.18215.
- scheduler: scheduler_config.json as SD2.1's scheduler config loaded into DDPMScheduler and saved (scaled_linear
  0.00085..0.012, v_prediction, steps_offset 1, leading spacing).
Every parameter (the blueprint encoder's zero-initialised conv_out included) is normal(0, 0.2), norm gains around 1.

Files:
- unet-io.safetensors: one UNet pass with a blueprint: sample [2,4,8,12], timesteps [2] (10, 700),
  encoder_hidden_states [2,17,32], controlnet_cond [2,3,64,96] (0..1) -> output [2,4,8,12]; also
  blueprint_embedding [2,16,8,12] (controlnet_cond_embedding's output alone).
- pipeline-io.safetensors: a whole run, 5 UniPC steps, 96x64 (width x height):
  reference_pixel_values [1,3,32,32] (the processor's output for reference.png), reference_hidden_states [1,17,32]
  (the tower's last_hidden_state: the context), blueprint [1,3,64,96] (0..1, what the pipeline fed the UNet),
  latents [1,4,8,12] (the initial noise), image [1,3,64,96] (0..1); metadata "steps", "timesteps" (JSON),
  "scheduler" (the UniPC config as JSON).
  reference.png: the reference picture (48x40, from Examples/art/umbrella-colored.png); lineart.png: the line art the
  blueprint was made from (96x64 RGB, from Examples/art/umbrella-lineart.png).
- threshold/*.png: cv2's binarisation (adaptiveThreshold MEAN_C, blockSize 5, C 7 on cvtColor RGB2GRAY, before
  the inversion), 8-bit grey: umbrella.png and blocks.png of Examples/art/*-lineart.png, noise.png of
  threshold/noise-source.png (37x29 random RGB, every border case), lineart.png of lineart.png.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision, randomize  # noqa: E402
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MODEL = os.path.join(HERE, "model")

VISION = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=32,
              patch_size=8, hidden_act="quick_gelu", projection_dim=16, layer_norm_eps=1e-5)
UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32, 32), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
            attention_head_dim=(2, 4, 4), use_linear_projection=True, norm_num_groups=8, upcast_attention=True)
BLUEPRINT_WIDTHS = (4, 8, 8, 16)
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 16, 16), layers_per_block=1,
           latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=0.18215)
# SD2.1's scheduler config as DDPMScheduler.from_pretrained reads it and save_pretrained writes it back (what the
# notebook saved into the published folder; the diffusers version it names is the one SDRO's README pins).
SCHEDULER = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.21.0", "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "clip_sample_range": 1.0,
             "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
             "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
             "thresholding": False, "timestep_spacing": "leading", "trained_betas": None, "variance_type": "fixed_small"}
MODEL_INDEX = {"_class_name": "StableDiffusionReferenceOnlyPipeline", "_diffusers_version": "0.21.0",
               "clip_image_processor": ["transformers", "CLIPImageProcessor"],
               "image_encoder": ["transformers", "CLIPVisionModel"], "scheduler": ["diffusers", "DDPMScheduler"],
               "unet": ["stable_diffusion_reference_only", "UNet2DDobuleConditionModel"],
               "vae": ["diffusers", "AutoencoderKL"]}
STEPS = 5


def save(path, tensors, metadata=None):
    fixture_io.save(path, tensors, metadata, root=HERE)


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def save_png(path, array):
    """Writes a uint8 array (H, W) or (H, W, 3) as PNG, unless the file already holds exactly these pixels."""
    if os.path.exists(path) and np.array_equal(np.asarray(Image.open(path)), array):
        return
    Image.fromarray(array).save(path, optimize=True)


class ReferenceOnlyUNet(torch.nn.Module):
    """SDRO's UNet2DDobuleConditionModel, restated: diffusers' UNet with the blueprint encoder's output added to
    conv_in's output, once, before the down blocks (unet_2d_dobule_condition.py L1063-1066)."""

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DConditionModel
        from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding

        self.unet = UNet2DConditionModel(**UNET)
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=UNET["block_out_channels"][0], conditioning_channels=3,
            block_out_channels=BLUEPRINT_WIDTHS)

    @property
    def config(self):
        return self.unet.config

    def weights(self):
        """The published key layout: the UNet's keys, then controlnet_cond_embedding.*."""
        out = dict(self.unet.state_dict())
        out.update({"controlnet_cond_embedding." + k: v for k, v in self.controlnet_cond_embedding.state_dict().items()})
        return out

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond):
        embedding = self.controlnet_cond_embedding(controlnet_cond)
        calls = []

        def add(module, inputs, output):
            calls.append(output.shape)
            return output + embedding

        handle = self.unet.conv_in.register_forward_hook(add)
        try:
            out = self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample
        finally:
            handle.remove()
        assert len(calls) == 1, calls
        return out


def binarise(rgb):
    """app.py get_line_art: the uint8 RGB array's grey, thresholded (255 where kept as paper, 0 for lines)."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, blockSize=5, C=7)


def blueprint_of(rgb):
    """get_line_art, then color_inversion: white lines on black, RGB uint8."""
    import cv2

    return 255 - cv2.cvtColor(binarise(rgb), cv2.COLOR_GRAY2RGB)


def build_model():
    from diffusers import AutoencoderKL
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    g = torch.Generator().manual_seed(31)
    tower = CLIPVisionModel(CLIPVisionConfig(**VISION)).eval()
    randomize(tower, g)
    unet = ReferenceOnlyUNet().eval()
    randomize(unet, g)
    vae = AutoencoderKL(**VAE).eval()
    randomize(vae, g)
    processor = CLIPImageProcessor(size={"shortest_edge": VISION["image_size"]},
                                   crop_size={"height": VISION["image_size"], "width": VISION["image_size"]})

    os.makedirs(MODEL, exist_ok=True)
    write_json(os.path.join(MODEL, "model_index.json"), MODEL_INDEX)
    write_json(os.path.join(MODEL, "scheduler", "scheduler_config.json"), SCHEDULER)
    unet_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items()
                   if not k.startswith("_")}
    unet_config.update({"_class_name": "UNet2DDobuleConditionModel", "_diffusers_version": "0.21.0",
                        "conditioning_channels": 3, "conditioning_embedding_out_channels": list(BLUEPRINT_WIDTHS)})
    write_json(os.path.join(MODEL, "unet", "config.json"), unet_config)
    save(os.path.join(MODEL, "unet", "diffusion_pytorch_model.safetensors"), unet.weights())
    vae.save_pretrained(os.path.join(MODEL, "vae"), safe_serialization=True)
    tower.save_pretrained(os.path.join(MODEL, "image_encoder"), safe_serialization=True)
    processor.save_pretrained(os.path.join(MODEL, "clip_image_processor"))
    return tower, processor, unet, vae


def unet_pass(unet):
    g = torch.Generator().manual_seed(37)
    sample = torch.randn((2, 4, 8, 12), generator=g)
    timesteps = torch.tensor([10.0, 700.0])
    context = torch.randn((2, 17, VISION["hidden_size"]), generator=g)
    cond = torch.rand((2, 3, 64, 96), generator=g)
    with torch.no_grad():
        embedding = unet.controlnet_cond_embedding(cond)
        out = unet(sample, timesteps, encoder_hidden_states=context, controlnet_cond=cond)
        plain = unet.unet(sample, timesteps, encoder_hidden_states=context).sample
    # The blueprint matters: without it the output differs.
    assert (out - plain).abs().max() > 1e-2
    save(os.path.join(HERE, "unet-io.safetensors"), {"sample": sample, "timesteps": timesteps,
                                                     "encoder_hidden_states": context, "controlnet_cond": cond,
                                                     "blueprint_embedding": embedding, "output": out})


def reference_only_pipeline(tower, processor, unet, vae, scheduler, reference, blueprint, steps, latents):
    """StableDiffusionReferenceOnlyPipeline.__call__ as app.py calls it (prompt=reference image, blueprint=image,
    num_inference_steps), one image, with the initial noise given. Returns (pixel_values, context, blueprint tensor,
    image in 0..1 NCHW, timesteps)."""
    from diffusers.image_processor import VaeImageProcessor

    vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
    image_processor = VaeImageProcessor(vae_scale_factor=vae_scale_factor)
    control_image_processor = VaeImageProcessor(vae_scale_factor=vae_scale_factor, do_convert_rgb=True,
                                                do_normalize=False)
    pixel_values = processor(reference, return_tensors="pt").pixel_values
    context = tower(pixel_values).last_hidden_state
    control = control_image_processor.preprocess(blueprint, height=None, width=None).to(dtype=torch.float32)
    scheduler.set_timesteps(steps)
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        prediction = unet(model_input, t, encoder_hidden_states=context, controlnet_cond=control)
        latents = scheduler.step(prediction, t, latents, return_dict=False)[0]
    decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    image = image_processor.postprocess(decoded, output_type="pt", do_denormalize=[True])
    return pixel_values, context, control, image, [int(t) for t in scheduler.timesteps]


def whole_run(tower, processor, unet, vae):
    from diffusers import DDPMScheduler, UniPCMultistepScheduler

    colored = Image.open(os.path.join(ROOT, "Examples/art/umbrella-colored.png")).convert("RGB")
    reference = colored.resize((48, 40), Image.BILINEAR)
    save_png(os.path.join(HERE, "reference.png"), np.asarray(reference))
    lines = Image.open(os.path.join(ROOT, "Examples/art/umbrella-lineart.png")).convert("RGB")
    lineart = np.asarray(lines.resize((96, 64), Image.BILINEAR))
    save_png(os.path.join(HERE, "lineart.png"), lineart)
    reference = Image.open(os.path.join(HERE, "reference.png")).convert("RGB")
    lineart = np.asarray(Image.open(os.path.join(HERE, "lineart.png")).convert("RGB"))
    blueprint = Image.fromarray(blueprint_of(lineart))

    # app.py: the folder's scheduler (DDPM), then UniPC from its config.
    scheduler = UniPCMultistepScheduler.from_config(
        DDPMScheduler.from_pretrained(os.path.join(MODEL, "scheduler")).config)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.timestep_spacing == "leading"
    g = torch.Generator().manual_seed(41)
    latents = torch.randn((1, 4, 8, 12), generator=g)
    with torch.no_grad():
        pixel_values, context, control, image, timesteps = reference_only_pipeline(
            tower, processor, unet, vae, scheduler, reference, blueprint, STEPS, latents.clone())
    assert tuple(control.shape) == (1, 3, 64, 96) and tuple(context.shape) == (1, 17, VISION["hidden_size"])
    uni = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    save(os.path.join(HERE, "pipeline-io.safetensors"), {
        "reference_pixel_values": pixel_values, "reference_hidden_states": context, "blueprint": control,
        "latents": latents, "image": image,
    }, metadata={"steps": str(STEPS), "timesteps": json.dumps(timesteps), "scheduler": json.dumps(uni, sort_keys=True)})
    print(f"whole run: timesteps {timesteps}, image range {float(image.min()):.3f}..{float(image.max()):.3f}")


def thresholds():
    folder = os.path.join(HERE, "threshold")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(43)
    noise = rng.integers(0, 256, size=(29, 37, 3), dtype=np.uint8)
    save_png(os.path.join(folder, "noise-source.png"), noise)
    noise = np.asarray(Image.open(os.path.join(folder, "noise-source.png")).convert("RGB"))
    sources = {"umbrella": os.path.join(ROOT, "Examples/art/umbrella-lineart.png"),
               "blocks": os.path.join(ROOT, "Examples/art/blocks-lineart.png"),
               "lineart": os.path.join(HERE, "lineart.png")}
    for name, path in sources.items():
        rgb = np.asarray(Image.open(path).convert("RGB"))
        save_png(os.path.join(folder, name + ".png"), binarise(rgb))
    save_png(os.path.join(folder, "noise.png"), binarise(noise))
    print("threshold/: " + ", ".join(sorted(os.listdir(folder))))


def main():
    hide_broken_torchvision()
    torch.manual_seed(0)
    tower, processor, unet, vae = build_model()
    unet_pass(unet)
    whole_run(tower, processor, unet, vae)
    thresholds()


if __name__ == "__main__":
    main()
