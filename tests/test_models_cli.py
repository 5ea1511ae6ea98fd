"""`sdegen sample` and `sdegen nll` on brought models (--model diffusers:DIR, python:MODULE:FUNCTION):
one command each, offline, with the samplers, guidance and inpainting of a trained run."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from sdegen.cli import main

diffusers = pytest.importorskip("diffusers")


def _unet(num_class_embeds=None):
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        num_class_embeds=num_class_embeds,
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A tiny random diffusers pipeline for 8x8 one-channel images, saved with save_pretrained."""
    path = tmp_path_factory.mktemp("pipe")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100)  # clip_sample=True, the default
    diffusers.DDPMPipeline(unet=_unet(), scheduler=scheduler).save_pretrained(path)
    return path


def test_sample_and_nll_of_a_saved_diffusers_pipeline_in_one_command_each(pipeline, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["sample", "--model", f"diffusers:{pipeline}", "--sampler", "dpmpp-2m", "--steps", "4"]
    assert main([*argv, "--n", "4", "--batch-size", "2", "--out", str(out)]) == 0
    report = json.loads((out / "samples.json").read_text())
    assert report["eps"] == 0.01 and report["n"] == 4  # step 0 of 100
    x = torch.load(out / "samples.pt")
    assert x.shape == (4, 1, 8, 8)
    # Per-example seeds: the samples do not depend on the batch size.
    assert main([*argv, "--n", "4", "--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    torch.testing.assert_close(torch.load(tmp_path / "one" / "samples.pt"), x)
    # diffusers' clip_sample only when asked: the denoised estimate then stays in [-1, 1].
    argv = [*argv, "--n", "4", "--denoise", "--out", str(tmp_path / "clip")]
    assert main([*argv, "--scheduler-thresholding"]) == 0
    assert float(torch.load(tmp_path / "clip" / "samples.pt").abs().max()) <= 1.0

    nll = ["nll", "--model", f"diffusers:{pipeline}", "--data", "digits", "--n", "2"]
    assert main([*nll, "--rtol", "1e-3", "--atol", "1e-3", "--out", str(out)]) == 0
    report = json.loads((out / "nll.json").read_text())
    assert report["eps"] == 0.01 and report["bits_per_dim"] > 0
    assert report["nats_of"].startswith("x = 2 (k + u) / 256 - 1 in [-1, 1]^64")
    assert "nats of x = 2 (k + u) / 256 - 1 in [-1, 1]^64" in capsys.readouterr().out
    # The variational bounds of the brought model from the same command: finite, with their errors.
    for bound in ("elbo", "ddpm"):
        assert main([*nll, "--bound", bound, "--samples", "4", "--out", str(tmp_path / bound)]) == 0
        report = json.loads((tmp_path / bound / "nll.json").read_text())
        assert report["bits_per_dim"] > 0 and report["monte_carlo_stderr"] >= 0, report


def test_classifier_free_guidance_and_inpainting_of_brought_models(tmp_path, monkeypatch):
    # A class-conditional diffusers model whose label 10 is the null label: --n-classes 10.
    cond = tmp_path / "cond"
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=50, prediction_type="v_prediction")
    diffusers.DDPMPipeline(unet=_unet(num_class_embeds=11), scheduler=scheduler).save_pretrained(cond)
    argv = [
        "sample",
        "--model",
        f"diffusers:{cond}",
        "--n-classes",
        "10",
        "--sampler",
        "ddim",
        "--steps",
        "3",
    ]
    assert main([*argv, "--label", "3", "--guidance", "2", "--n", "2", "--out", str(tmp_path / "g")]) == 0
    assert json.loads((tmp_path / "g" / "samples.json").read_text())["guidance"] == 2.0
    # A k-diffusion-style denoiser through python:MODULE:FUNCTION, filling in digits.
    (tmp_path / "my_denoiser.py").write_text(
        textwrap.dedent(
            """
            import sdegen.models

            def build():  # D(x, sigma) of N(0, I) data: the posterior mean x / (1 + sigma^2)
                return sdegen.models.from_denoiser(lambda x, sigma: x / (1 + sigma[:, None, None, None] ** 2))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["sample", "--model", "python:my_denoiser:build", "--data", "digits", "--inpaint", "left"]
    assert (
        main([*argv, "--sampler", "edm-heun", "--steps", "4", "--n", "2", "--out", str(tmp_path / "i")]) == 0
    )
    report = json.loads((tmp_path / "i" / "samples.json").read_text())
    assert report["inpainting"]["mask"] == "left" and report["eps"] == 0.002


def test_brought_model_usage_errors(pipeline, tmp_path, capsys):
    def fails(argv, match):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert match in err, err

    out = ["--out", str(tmp_path)]
    fails(["sample", *out], "give a run directory RUN, or a brought model with --model SPEC")
    fails(["sample", str(tmp_path), "--model", f"diffusers:{pipeline}", *out], "not both")
    fails(["sample", str(tmp_path), "--data", "digits", *out], "apply to a brought model")
    fails(["sample", "--model", f"diffusers:{pipeline}"], "give --out DIR")
    fails(["sample", "--model", f"onnx:{pipeline}", *out], "expected diffusers:DIR or python:MODULE:FUNCTION")
    fails(["nll", "--model", f"diffusers:{pipeline}", *out], "give its images with --data NAME")
    fails(["sample", "--model", f"diffusers:{tmp_path}", *out], "neither model_index.json")
    fails(["sample", "--model", "python:no_such_module:build", *out], "cannot import 'no_such_module'")
    fails(
        ["sample", "--model", f"diffusers:{pipeline}", "--label", "1", "--classifier", str(tmp_path), *out],
        "--classifier guides a run trained by sdegen",
    )


def test_nll_steps_apply_to_the_ddpm_bound_of_a_continuous_model_only(pipeline, tmp_path, capsys):
    nll = ["nll", "--model", f"diffusers:{pipeline}", "--data", "digits", "--n", "2", "--out", str(tmp_path)]
    assert main([*nll, "--bound", "ddpm", "--steps", "20"]) == 2
    assert "this model's chain has its own steps" in capsys.readouterr().err
    assert main([*nll, "--steps", "20"]) == 2
    assert "only --bound ddpm reads it" in capsys.readouterr().err
