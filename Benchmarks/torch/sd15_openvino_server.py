#!/usr/bin/env python3
"""OpenVINO's half of an interleaved comparison with paintsd (issue 15): `paints-bench-diffusion --interleaved-openvino`
starts this script, waits for "ready", then sends part names one line at a time and reads one JSON line back per part,
timing its own pass of the same part between two of OpenVINO's. Both engines stay loaded; they never run at once. The
machines here drift 10-35% within minutes, so two engines timed ten minutes apart (sd15_openvino.py, then
paints-bench-diffusion) can differ by the phase alone; alternating part by part takes the phase out of the ratio.

    python Benchmarks/torch/sd15_openvino_server.py OUT_DIR PART...

OUT_DIR: the f32 diffusers folders of sd15_random.py --write. PART: unet_batch1, unet_batch2, controlnet_step,
vae_decode_512, vae_encode_512, vae_decode_1024, vae_encode_1024, clip_encode (the figure names of sd15_openvino.py,
less `_s`; controlnet_step is its CFG step with the line-art ControlNet: the ControlNet at batch 2 with the hint
embedded inside the call, then the UNet with the 13 residuals handed over without a copy). Each
is converted and compiled as sd15_openvino.py does it (the same wrappers, each module converted once and reshaped to
static shapes per part, 2 threads, f32, LATENCY) and run once as a warm-up; the torch modules are dropped before
"ready". Both UNet batches hold about 8 GB, the 1024x1024 VAE several more: on a 24 GB machine time the UNet, the VAE
and the text encoder in separate runs. Then per line read: a part name answers
{"part": name, "s": seconds of one inference}; "quit" (or the end of input) ends it. Inputs are random, seeded as in
sd15_openvino.py (the time does not depend on the values). Writes nothing.
"""
import gc
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd15_openvino import (CONFIG, THREADS, TOKENS, ControlNetPass, TextEncode, UNetPass,  # noqa: E402
                           UNetWithResiduals, VAEDecode, VAEEncode)
from sd15_random import CONTROLNET, SD15_CLIP, hide_broken_torchvision  # noqa: E402

PARTS = ("unet_batch1", "unet_batch2", "controlnet_step", "vae_decode_512", "vae_encode_512", "vae_decode_1024",
         "vae_encode_1024", "clip_encode")


def say(line):
    print(line, flush=True)


def main():
    if len(sys.argv) < 3 or any(p not in PARTS for p in sys.argv[2:]):
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR PART... (parts: {', '.join(PARTS)})")
    out, wanted = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(THREADS)
    hide_broken_torchvision()
    import openvino as ov
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

    core = ov.Core()
    g = torch.Generator().manual_seed(1)
    requests = {}

    def convert(module, example):
        with torch.no_grad():
            return ov.convert_model(module, example_input=tuple(example))

    def prepare(name, model, example):
        """`model` (converted once per module, its shapes dynamic) reshaped to `example`'s, compiled, warmed up."""
        model.reshape({i: ov.PartialShape(list(t.shape)) for i, t in enumerate(example)})
        request = core.compile_model(model, "CPU", CONFIG).create_infer_request()
        arrays = [np.ascontiguousarray(t.numpy()) for t in example]
        requests[name] = lambda: request.infer(arrays, share_inputs=True)
        requests[name]()  # warm-up
        say(f"# compiled {name}")

    def prepare_parts(load, wrap, examples):
        """Loads a module, converts it once (traced with the first part's inputs) and drops it before the parts'
        compiles (a compiled UNet holds its own 3.4 GB of weights); `examples`: part name -> inputs."""
        module = load()
        model = convert(wrap(module), next(iter(examples.values())))
        del module
        gc.collect()
        for name, example in examples.items():
            prepare(name, model, example)

    unet = {f"unet_batch{b}": [torch.randn((b, 4, 64, 64), generator=g), torch.tensor([500.0] * b),
                               torch.randn((b, TOKENS, 768), generator=g)] for b in (1, 2) if f"unet_batch{b}" in wanted}
    if unet:
        prepare_parts(lambda: UNet2DConditionModel.from_pretrained(os.path.join(out, "unet")).eval(), UNetPass, unet)
    if "controlnet_step" in wanted:
        unet = UNet2DConditionModel.from_pretrained(os.path.join(out, "unet")).eval()
        controlnet = ControlNetModel.from_pretrained(os.path.join(out, CONTROLNET)).eval()
        downscale = 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)
        x2, t2, c2 = torch.randn((2, 4, 64, 64), generator=g), torch.tensor([500.0] * 2), torch.randn((2, TOKENS, 768), generator=g)
        hint = torch.cat([(torch.rand((1, 3, 64 * downscale, 64 * downscale), generator=g) > 0.9).float()] * 2)
        with torch.no_grad():
            residuals = list(ControlNetPass(controlnet)(x2, t2, c2, hint))
        step = {}
        for key, module, example in (("controlnet", ControlNetPass(controlnet), [x2, t2, c2, hint]),
                                     ("unet", UNetWithResiduals(unet), [x2, t2, c2, *residuals])):
            model = convert(module, example)
            model.reshape({i: ov.PartialShape(list(t.shape)) for i, t in enumerate(example)})
            step[key] = core.compile_model(model, "CPU", CONFIG)
            del model, module
        del unet, controlnet, residuals
        gc.collect()
        cn_request, un_request = step["controlnet"].create_infer_request(), step["unet"].create_infer_request()
        cn_inputs = [np.ascontiguousarray(t.numpy()) for t in (x2, t2, c2, hint)]
        for i, t in enumerate((x2, t2, c2)):
            un_request.set_input_tensor(i, ov.Tensor(np.ascontiguousarray(t.numpy())))

        def controlnet_step():  # as sd15_openvino.py times it
            cn_request.infer(cn_inputs, share_inputs=True)
            for i in range(len(step["controlnet"].outputs)):
                un_request.set_input_tensor(3 + i, cn_request.get_output_tensor(i))
            un_request.infer()

        requests["controlnet_step"] = controlnet_step
        controlnet_step()  # warm-up
        say("# compiled controlnet_step")
    for kind, wrapper in (("decode", VAEDecode), ("encode", VAEEncode)):
        vae = {f"vae_{kind}_{size}": [torch.randn((1, 4, size // 8, size // 8), generator=g) if kind == "decode"
                                      else torch.randn((1, 3, size, size), generator=g).clamp(-1, 1)]
               for size in (512, 1024) if f"vae_{kind}_{size}" in wanted}
        if vae:
            prepare_parts(lambda: AutoencoderKL.from_pretrained(os.path.join(out, "vae")).eval(), wrapper, vae)
    if "clip_encode" in wanted:
        ids = torch.randint(0, SD15_CLIP["vocab_size"], (1, TOKENS), generator=g)
        prepare_parts(lambda: CLIPTextModel.from_pretrained(os.path.join(out, "text_encoder")).eval(), TextEncode,
                      {"clip_encode": [ids]})
    gc.collect()
    say(f"ready openvino {ov.get_version()}; {CONFIG}")
    for line in sys.stdin:
        name = line.strip()
        if name == "quit":
            break
        if name not in requests:
            say(json.dumps({"part": name, "error": "not prepared"}))
            continue
        start = time.perf_counter()
        requests[name]()
        say(json.dumps({"part": name, "s": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
