#!/usr/bin/env python3
"""Parity fixtures of the few-step samplers (issue 14) from diffusers: LCMScheduler, TCDScheduler, and DDIM / Euler
ancestral with timestep_spacing "trailing", and Euler (EulerDiscreteScheduler).

Run from the repository root with the pinned stack (`make fixtures` makes the venv):
    python Tests/Fixtures/schedulers-fewstep/generate.py
Writes, into this folder:
- scheduler-<name>.safetensors in the format of Tests/Fixtures/diffusion's (timesteps, alphas_cumprod,
  init_noise_sigma, sigmas where the scheduler has them, sample_i, model_input_i, noise_i; metadata class, config,
  steps; here also strength and gamma) from the same toy model, read by SchedulerParityTests' SchedulerFixture;
- pipeline-<name>.safetensors: whole txt2img runs of diffusers' StableDiffusionPipeline with the tiny SD1 stack of
  Tests/Fixtures/diffusion (unet-sd1, vae, clip-sd1, tokenizer) and LCM / TCD, every noise draw recorded, and one
  img2img run with LCM as LatentConsistencyModelImg2ImgPipeline schedules it (set_timesteps(strength=), all steps run)
  with StableDiffusionImg2ImgPipeline's classifier-free guidance.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.dirname(HERE)
DIFFUSION = os.path.join(FIXTURES, "diffusion")
sys.path.insert(0, FIXTURES)
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision  # noqa: E402

SD_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
# The published SD1.5 scheduler config (as LCMScheduler.from_config(pipe.scheduler.config) would inherit it).
SD15 = dict(**SD_BETAS, set_alpha_to_one=False, steps_offset=1, clip_sample=False)

# name, class, config, steps, strength, gamma (TCD's step eta)
SCHEDULER_CASES = [
    ("lcm-4", "LCMScheduler", dict(**SD15), 4, 1.0, None),
    ("lcm-8", "LCMScheduler", dict(**SD15), 8, 1.0, None),
    ("lcm-4-vpred", "LCMScheduler", dict(**SD15, prediction_type="v_prediction"), 4, 1.0, None),
    ("lcm-8-vpred", "LCMScheduler", dict(**SD15, prediction_type="v_prediction"), 8, 1.0, None),
    ("lcm-4-strength", "LCMScheduler", dict(**SD15), 4, 0.7, None),
    ("tcd-4", "TCDScheduler", dict(**SD15), 4, 1.0, 0.3),
    ("tcd-4-gamma0", "TCDScheduler", dict(**SD15), 4, 1.0, 0.0),
    ("tcd-4-vpred", "TCDScheduler", dict(**SD15, prediction_type="v_prediction"), 4, 1.0, 0.3),
    ("tcd-4-strength", "TCDScheduler", dict(**SD15), 4, 0.55, 0.3),
    ("euler-a-trailing-4", "EulerAncestralDiscreteScheduler", dict(**SD_BETAS, steps_offset=1,
                                                                   timestep_spacing="trailing"), 4, 1.0, None),
    ("ddim-trailing-4", "DDIMScheduler", dict(**SD15, timestep_spacing="trailing"), 4, 1.0, None),
    # Euler without ancestral noise (EulerDiscreteScheduler, s_churn 0): trailing (SDXL-Lightning's recipe), the
    # model's own leading spacing, and v-prediction with linspace spacing.
    ("euler-trailing-4", "EulerDiscreteScheduler", dict(**SD_BETAS, steps_offset=1, timestep_spacing="trailing"), 4, 1.0, None),
    ("euler-sd15-6", "EulerDiscreteScheduler", dict(**SD_BETAS, steps_offset=1, timestep_spacing="leading"), 6, 1.0, None),
    ("euler-linspace-vpred-5", "EulerDiscreteScheduler", dict(**SD_BETAS, prediction_type="v_prediction",
                                                              timestep_spacing="linspace"), 5, 1.0, None),
]


def save(name, tensors, metadata=None):
    fixture_io.save(os.path.join(HERE, name), tensors, metadata, root=HERE)


def toy_model(model_input, t):
    """The stand-in UNet of Tests/Fixtures/diffusion/generate.py, which the Swift test computes the same way."""
    return torch.tanh(model_input * 0.7) * 0.9 + 0.01 * (float(t) / 1000.0)


class NoiseRecorder:
    """Replaces `randn_tensor` in the given modules, drawing from one generator and keeping every draw in order."""

    def __init__(self, generator, *modules):
        self.generator, self.modules, self.recorded = generator, modules, []

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        noise = torch.randn(shape, generator=self.generator, dtype=torch.float32)
        self.recorded.append(noise.clone())
        return noise.to(dtype or torch.float32)

    def __enter__(self):
        self.saved = [m.randn_tensor for m in self.modules]
        for m in self.modules:
            m.randn_tensor = self
        return self

    def __exit__(self, *exc):
        for m, f in zip(self.modules, self.saved):
            m.randn_tensor = f


def schedulers():
    import diffusers
    import diffusers.schedulers.scheduling_ddim as ddim_module
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module
    import diffusers.schedulers.scheduling_lcm as lcm_module
    import diffusers.schedulers.scheduling_tcd as tcd_module

    for name, cls_name, config, steps, strength, gamma in SCHEDULER_CASES:
        scheduler = getattr(diffusers, cls_name)(**config)
        if strength != 1.0:
            scheduler.set_timesteps(steps, strength=strength)
        else:
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
        extra = {} if gamma is None else {"eta": gamma}
        with NoiseRecorder(g, ddim_module, euler_a_module, lcm_module, tcd_module) as noise:
            for i, t in enumerate(scheduler.timesteps):
                model_input = scheduler.scale_model_input(sample, t)
                output = toy_model(model_input, t)
                tensors[f"model_input_{i}"] = model_input.clone()
                sample = scheduler.step(output, t, sample, **extra).prev_sample
                tensors[f"sample_{i + 1}"] = sample.clone()
        for i, z in enumerate(noise.recorded):
            tensors[f"noise_{i}"] = z
        metadata = {"class": cls_name, "config": json.dumps(config), "steps": str(steps), "strength": str(strength)}
        if gamma is not None:
            metadata["gamma"] = str(gamma)
        save(f"scheduler-{name}.safetensors", tensors, metadata)


PIPELINE_CASES = [
    # name, class, steps, gamma (the pipeline's eta, which StableDiffusionPipeline hands to TCD's step)
    ("lcm-4", "LCMScheduler", 4, None),
    ("tcd-4", "TCDScheduler", 4, 0.3),
]


def pipelines():
    """Whole txt2img runs (32x24 pixels, CFG 7.5, a negative prompt), the initial latents and every scheduler noise
    recorded in the order they are drawn; and an LCM img2img run from the LCM picture (strength 0.6, CFG 5)."""
    import diffusers
    import diffusers.models.autoencoders.vae as vae_module
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion as sd_module
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as i2i_module
    import diffusers.schedulers.scheduling_lcm as lcm_module
    import diffusers.schedulers.scheduling_tcd as tcd_module
    from diffusers import AutoencoderKL, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(os.path.join(DIFFUSION, "unet-sd1")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(DIFFUSION, "vae")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(DIFFUSION, "clip-sd1")).eval()
    folder = os.path.join(DIFFUSION, "tokenizer")
    tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                        model_max_length=77)
    prompt, negative = "a watercolor painting of a cat", "blurry"

    class ConsistencyImg2Img(StableDiffusionImg2ImgPipeline):
        """StableDiffusionImg2ImgPipeline (CFG as a batch of two) scheduled as LatentConsistencyModelImg2ImgPipeline
        schedules LCM: set_timesteps(steps, strength=strength), every one of those steps run."""

        def get_timesteps(self, num_inference_steps, strength, device):
            self.scheduler.set_timesteps(num_inference_steps, device=device, strength=strength)
            return self.scheduler.timesteps, num_inference_steps

    for name, cls_name, steps, gamma in PIPELINE_CASES:
        scheduler = getattr(diffusers, cls_name)(**SD15)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        g = torch.Generator().manual_seed(31)
        extra = {} if gamma is None else {"eta": gamma}
        tensors = {}
        metadata = {"prompt": prompt, "negative_prompt": negative, "steps": str(steps), "guidance": "7.5",
                    "class": cls_name, "scheduler": json.dumps(SD15)}
        if gamma is not None:
            metadata["gamma"] = str(gamma)
        with torch.no_grad(), NoiseRecorder(g, sd_module, i2i_module, lcm_module, tcd_module) as noise:
            image = pipe(prompt, negative_prompt=negative, height=32, width=24, num_inference_steps=steps,
                         guidance_scale=7.5, output_type="np", **extra).images
        tensors["image"] = torch.from_numpy(image).permute(0, 3, 1, 2).contiguous()
        tensors["timesteps"] = scheduler.timesteps.to(torch.float64)
        for i, z in enumerate(noise.recorded):
            tensors[f"noise_{i}"] = z
        if cls_name == "LCMScheduler":
            img2img = ConsistencyImg2Img(**pipe.components)
            # The engine encodes img2img sources to the posterior mean (deterministic); make the reference do the same.
            saved_sample = vae_module.DiagonalGaussianDistribution.sample
            vae_module.DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mean
            source = torch.from_numpy(image).permute(0, 3, 1, 2) * 2 - 1
            with torch.no_grad(), NoiseRecorder(g, sd_module, i2i_module, lcm_module, tcd_module) as noise:
                image2 = img2img(prompt, image=source, negative_prompt=negative, strength=0.6, num_inference_steps=steps,
                                 guidance_scale=5.0, output_type="np").images
            vae_module.DiagonalGaussianDistribution.sample = saved_sample
            tensors["img2img_image"] = torch.from_numpy(image2).permute(0, 3, 1, 2).contiguous()
            tensors["img2img_timesteps"] = scheduler.timesteps.to(torch.float64)
            for i, z in enumerate(noise.recorded):
                tensors[f"img2img_noise_{i}"] = z
            metadata.update({"img2img_strength": "0.6", "img2img_guidance": "5.0"})
        save(f"pipeline-{name}.safetensors", tensors, metadata)


if __name__ == "__main__":
    hide_broken_torchvision()
    schedulers()
    pipelines()
