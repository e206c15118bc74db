#!/usr/bin/env python3
"""Builds the TAESD parity fixtures from diffusers' AutoencoderTiny (a tiny random model of the real architecture).

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt:
    python Tests/Fixtures/taesd/generate.py
Every parameter is re-initialised with seeded random values (kernels normal(0, 0.12) in the 8-wide encoder and
normal(0, 0.08) in the 12-wide decoder, biases normal(0, 0.2)), so that activations neither vanish nor explode through
the residual blocks and the outputs depend clearly on the inputs. A file whose tensors are already on disk is not rewritten.

tiny/: config.json + diffusion_pytorch_model.safetensors (float32), diffusers' AutoencoderTiny layout as in
madebyollin/taesd: encoder.layers.{0..14} and decoder.layers.{0..18} at the real block counts (num_encoder_blocks
(1, 3, 3, 3), num_decoder_blocks (3, 3, 3, 1)), channel widths 8 (encoder) and 12 (decoder) instead of 64, act_fn relu,
upsample_fn nearest, latent_channels 4, scaling_factor 1.0, latent_magnitude 3, latent_shift 0.5.
tiny/io.safetensors:
  latents [2,4,6,5] (normal * 2.5: large enough that the decoder's tanh(x/3)*3 clamp matters) -> decoded [2,3,48,40]
      = AutoencoderTiny.decode(latents).sample, in about -1..1 (not clamped)
  image [2,3,44,36] in -1..1 (a size that is not a multiple of 8) -> latents_encoded [2,4,6,5]
      = AutoencoderTiny.encode(image).latents
  (the io names of the brief, `image -> latents`, would clash with the decoder's input, hence `latents_encoded`.)

diffusers 0.42.1 conventions the Swift side reproduces (models/autoencoders/autoencoder_tiny.py, vae.py):
- EncoderTiny.forward maps the image from -1..1 to 0..1 (x.add(1).div(2)) before its layers; DecoderTiny.forward
  clamps with tanh(x / 3) * 3 first and maps the layers' 0..1 output back to -1..1 (x.mul(2).sub(1)), unclamped.
- encode returns the encoder's output as is and decode decodes its input as is: scale_latents / unscale_latents
  (x / (2 * latent_magnitude) + latent_shift, clamped to 0..1, and back) are used only by forward(), which round-trips
  the latents through 8-bit values as if stored in a PNG; neither encode nor decode applies them.
- In a StableDiffusionPipeline with vae=AutoencoderTiny, the pipeline decodes
  vae.decode(latents / vae.config.scaling_factor) with scaling_factor 1.0, i.e. the UNet's latents unchanged (SD
  latents already multiplied by the SD VAE's 0.18215); img2img encodes scaling_factor * encode(image).latents, again
  unchanged. This script checks the decode half on diffusers itself: a StableDiffusionPipeline built from the tiny SD1
  components of ../diffusion with vae=tiny gives, for output_type "pt", exactly
  (decode(latents).sample / 2 + 0.5).clamp(0, 1) of the latents it gives for output_type "latent".
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision, randomize  # noqa: E402
DIFFUSION = os.path.join(HERE, "..", "diffusion")

TINY = dict(in_channels=3, out_channels=3, encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(12, 12, 12, 12), act_fn="relu", upsample_fn="nearest", latent_channels=4,
            upsampling_scaling_factor=2, num_encoder_blocks=(1, 3, 3, 3), num_decoder_blocks=(3, 3, 3, 1),
            latent_magnitude=3, latent_shift=0.5, scaling_factor=1.0, shift_factor=0.0)


def save(path, tensors, metadata=None):
    fixture_io.save(path, tensors, metadata, root=HERE)


def check_pipeline_convention(vae):
    """What a StableDiffusionPipeline with vae=AutoencoderTiny decodes: the latents it holds, unchanged."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(os.path.join(DIFFUSION, "unet-sd1")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(DIFFUSION, "clip-sd1")).eval()
    folder = os.path.join(DIFFUSION, "tokenizer")
    tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                        model_max_length=77)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                                           beta_end=0.012, steps_offset=1, clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 8, pipe.vae_scale_factor
    start = torch.randn((1, 4, 8, 6), generator=torch.Generator().manual_seed(5))
    common = dict(prompt="a cat", num_inference_steps=3, height=64, width=48, guidance_scale=5.0)
    with torch.no_grad():
        latents = pipe(**common, latents=start.clone(), output_type="latent").images
        image = pipe(**common, latents=start.clone(), output_type="pt").images
        expected = (vae.decode(latents).sample / 2 + 0.5).clamp(0, 1)
    assert image.shape == (1, 3, 64, 48), image.shape
    assert torch.equal(image, expected), (image - expected).abs().max()
    print("pipeline: StableDiffusionPipeline(vae=AutoencoderTiny) decodes its latents unchanged, "
          f"image = (decode(latents) / 2 + 0.5).clamp(0, 1) exactly (latents std {latents.std():.3f})")


def main():
    hide_broken_torchvision()
    from diffusers import AutoencoderTiny

    model = AutoencoderTiny(**TINY).eval()
    randomize(model, torch.Generator().manual_seed(61))
    with torch.no_grad():  # smaller kernels: activations stay near 1 through the residual blocks (see the docstring)
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.mul_(0.6 if name.startswith("encoder.") else 0.4)
    folder = os.path.join(HERE, "tiny")
    model.save_pretrained(folder, safe_serialization=True)

    g = torch.Generator().manual_seed(67)
    latents = torch.randn((2, 4, 6, 5), generator=g) * 2.5
    image = torch.rand((2, 3, 44, 36), generator=g) * 2 - 1
    with torch.no_grad():
        decoded = model.decode(latents).sample
        encoded = model.encode(image).latents
        # The clamp must matter for these latents, or the fixture would not test it.
        unclamped = model.decoder.layers(latents).mul(2).sub(1)
    assert decoded.shape == (2, 3, 48, 40) and encoded.shape == (2, 4, 6, 5), (decoded.shape, encoded.shape)
    print(f"decoded {decoded.min():.3f}..{decoded.max():.3f} (std {decoded.std():.3f}), without the clamp it would "
          f"differ by up to {(unclamped - decoded).abs().max():.3f}; encoded std {encoded.std():.3f}")
    save(os.path.join(folder, "io.safetensors"),
         {"latents": latents, "decoded": decoded, "image": image, "latents_encoded": encoded})
    print(f"tiny: {sum(p.numel() for p in model.parameters())} parameters")
    check_pipeline_convention(model)


if __name__ == "__main__":
    main()
