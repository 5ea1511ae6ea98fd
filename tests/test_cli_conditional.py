"""`sdegen train --conditional / --classifier` and `sdegen sample --label --guidance / --classifier /
--inpaint`: end to end on the ring (each Gaussian a class) and the digits, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from _runs import write_run

from sdegen import VPSDE
from sdegen import data as D
from sdegen.cli import main

RING = D.ring(8)


def _fails_cleanly(capsys, argv, match):
    capsys.readouterr()  # what earlier commands printed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err


def _exact_classes(path) -> torch.Tensor:
    """The most probable class of each sample under the ring's exact classifier at t = 1e-3."""
    x = torch.load(path, weights_only=True).double()
    return RING.mixture.classifier(VPSDE())(1e-3, x).argmax(1)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """`sdegen train --conditional` for 300 steps on the ring (each of its 8 Gaussians a class)."""
    out = tmp_path_factory.mktemp("cli") / "cond"
    argv = ["train", "--conditional", "--label-dropout", "0.2", "--out", str(out), "--steps", "300",
            "--hidden", "64", "--depth", "3", "--batch-size", "256", "--lr", "3e-3", "--warmup", "20",
            "--log-every", "100", "--eval-every", "300", "--n-eval", "64", "--no-progress", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_train_conditional_writes_a_conditional_run(conditional_run, capsys):
    cfg = json.loads((conditional_run / "config.json").read_text())
    assert cfg["kind"] == "conditional" and cfg["loss"] == {"name": "dsm", "eps": 1e-5, "label_dropout": 0.2}
    last = json.loads((conditional_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 300 and "held_out_nll" in last  # -log p(x | y) of held-out labelled points
    assert (conditional_run / "figures" / "samples.png").is_file()
    # The settings that define the run cannot change on resume; the kind is kept without the flag.
    _fails_cleanly(capsys, ["train", "--out", str(conditional_run), "--resume", "--label-dropout", "0.5"],
                   "--label-dropout 0.5 (run: 0.2)")  # fmt: skip
    _fails_cleanly(
        capsys,
        ["train", "--out", str(conditional_run), "--resume", "--classifier"],
        "--classifier True (run: False)",
    )


def test_sample_a_label_with_guidance(conditional_run, tmp_path, capsys):
    common = ["--n", "400", "--sampler", "ddpm", "--steps", "100", "--threads", "1"]
    for label, w in ((3, "0"), (6, "2")):
        out = tmp_path / f"s{label}"
        assert (
            main(
                [
                    "sample",
                    str(conditional_run),
                    "--label",
                    str(label),
                    "--guidance",
                    w,
                    "--out",
                    str(out),
                    *common,
                ]
            )
            == 0
        )
        report = json.loads((out / "samples.json").read_text())
        assert report["labels"] == label and report["guidance"] == float(w)
        # The samples are of the class asked for: 98 % (w = 0) and 100 % (w = 2) measured.
        assert float((_exact_classes(out / "samples.pt") == label).double().mean()) > 0.93
        if w == "0":  # the conditional model: its class's Gaussian (energy distance 0.006 measured)
            assert report["energy_distance"] < 0.05
    # w = -1 is the unconditional model: every class appears (about 1/8 each).
    out = tmp_path / "uncond"
    assert (
        main(["sample", str(conditional_run), "--label", "3", "--guidance", "-1", "--out", str(out), *common])
        == 0
    )
    counts = torch.bincount(_exact_classes(out / "samples.pt"), minlength=8)
    assert int(counts.min()) > 15, counts
    # Without --label the samples cycle through the classes.
    out = tmp_path / "all"
    assert main(["sample", str(conditional_run), "--out", str(out), *common]) == 0
    agree = (_exact_classes(out / "samples.pt") == torch.arange(400) % 8).double().mean()
    assert float(agree) > 0.9, float(agree)
    assert json.loads((out / "samples.json").read_text())["labels"] == "every class in turn"


def test_nll_of_a_conditional_run_is_conditional(conditional_run, tmp_path):
    out = tmp_path / "nll"
    assert (
        main(
            ["nll", str(conditional_run), "--n", "64", "--rtol", "1e-3", "--atol", "1e-3", "--out", str(out)]
        )
        == 0
    )
    report = json.loads((out / "nll.json").read_text())
    # -log p(x | y) of the ring's classes is about log(2 pi 0.25) + 1 = 1.45 nats, 2.08 below -log p(x).
    assert report["of"].startswith("-log p(x | y)") and 1.0 < report["true_nll"] < 2.0
    assert abs(report["nll"] - report["true_nll"]) < 0.5


def test_classifier_run_guides_an_unconditional_run(tmp_path, capsys):
    clf, score = tmp_path / "clf", write_run(tmp_path / "score", steps=4)
    argv = ["train", "--classifier", "--out", str(clf), "--steps", "150", "--hidden", "32", "--depth", "2",
            "--batch-size", "128", "--warmup", "5", "--log-every", "30", "--eval-every", "60", "--n-eval", "200",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    cfg = json.loads((clf / "config.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["loss"]["name"] == "cross-entropy"
    last = json.loads((clf / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["held_out_accuracy"] > 0.9  # eight Gaussians 3 apart, std 0.5: nearly separable
    out = tmp_path / "guided"
    argv = ["sample", str(score), "--label", "5", "--classifier", str(clf), "--classifier-scale", "2", "--n", "16",
            "--sampler", "ddpm", "--steps", "10", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "samples.json").read_text())
    assert report["labels"] == 5 and report["classifier_scale"] == 2.0 and report["classifier"] == str(clf)
    _fails_cleanly(capsys, ["sample", str(clf)], "is a classifier run")
    _fails_cleanly(capsys, ["nll", str(clf)], "it has no likelihood")
    other = write_run(tmp_path / "ve", sde="ve", steps=2)
    _fails_cleanly(
        capsys,
        ["sample", str(other), "--label", "1", "--classifier", str(clf)],
        "p_t(y | x) depends on the SDE",
    )
    moons = write_run(tmp_path / "moons-clf", kind="classifier", data="moons", steps=2)
    _fails_cleanly(
        capsys,
        ["sample", str(score), "--label", "1", "--classifier", str(moons)],
        "was trained with the data name=moons, the run has name=ring",
    )
    _fails_cleanly(
        capsys, ["sample", str(score), "--label", "8", "--classifier", str(clf)], "its classes are 0..7"
    )


def test_inpaint_digits(tmp_path, capsys):
    run = write_run(
        tmp_path / "digits", kind="conditional", data="digits", model="unet-tiny", steps=2, batch_size=16
    )
    out = tmp_path / "inpainted"
    argv = ["sample", str(run), "--inpaint", "left", "--images", "4", "--n", "8", "--label", "3", "--guidance", "1",
            "--sampler", "ddpm", "--steps", "10", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "samples.json").read_text())["inpainting"]
    assert report["mask"] == "left" and report["images"] == 4 and report["observed_pixels"] == 32
    # Replacement sets the observed pixels to the noised observation at every step, so at the end
    # time they are the image up to sigma(1e-3) = 0.01 of noise; the others are the model's.
    assert report["rmse_observed"] < 0.03
    assert (out / "figures" / "samples-ddpm-inpaint-left.png").is_file()
    x = torch.load(out / "samples.pt", weights_only=True)
    originals = D.load_digits("test").to_model(D.load_digits("test").pixels[:4], dequantize=False)
    assert (x[:, :, :, :4] - originals[torch.arange(8) % 4][:, :, :, :4]).abs().max() < 0.1
    # A mask from a file: (H, W) for every channel; a mask of another shape is refused before any work.
    torch.save(torch.rand(8, 8, generator=torch.Generator().manual_seed(0)) < 0.5, tmp_path / "mask.pt")
    assert main(["sample", str(run), "--inpaint", str(tmp_path / "mask.pt"), "--n", "4", "--sampler", "ddpm",
                 "--steps", "5", "--out", str(tmp_path / "m")]) == 0  # fmt: skip
    # Without --label a conditional run fills in each image given its own digit.
    assert json.loads((tmp_path / "m" / "samples.json").read_text())["labels"] == "each inpainted image's own"
    torch.save(torch.ones(1, 7, 7, dtype=torch.bool), tmp_path / "small.pt")
    _fails_cleanly(capsys, ["sample", str(run), "--inpaint", str(tmp_path / "small.pt"), "--out", str(tmp_path / "x")],
                   "holds a mask of shape (1, 7, 7), but the run's images have shape (1, 8, 8)")  # fmt: skip
    _fails_cleanly(capsys, ["sample", str(run), "--inpaint", "left", "--sampler", "ode", "--out", str(tmp_path / "x")],
                   "cannot condition on an observation")  # fmt: skip
    _fails_cleanly(capsys, ["sample", str(run), "--inpaint", str(tmp_path / "nomask.pt"), "--out", str(tmp_path / "x")],
                   "not one of the masks")  # fmt: skip


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--conditional", "--classifier"], "choose one"),
        (
            ["train", "--label-dropout", "0.2"],
            "--label-dropout is the label dropout of a class-conditional model",
        ),
        (["train", "--conditional", "--label-dropout", "1.5"], "expected a probability in [0, 1], got '1.5'"),
        (["train", "--conditional", "--data", "swissroll"], "swissroll has no classes"),
        (["train", "--loss", "cross-entropy"], "trains a classifier: add --classifier"),
        (["train", "--classifier", "--loss", "ssm"], "--classifier trains with --loss cross-entropy"),
        (["sample", "{score}", "--guidance", "2"], "needs a class-conditional run"),
        (["sample", "{score}", "--label", "1"], "--label needs a class-conditional run"),
        (["sample", "{cond}", "--label", "8"], "--label 8 is not a class of"),
        (["sample", "{cond}", "--label", "-1"], "argument --label: expected an integer >= 0, got '-1'"),
        (
            ["sample", "{cond}", "--guidance", "nan"],
            "argument --guidance: expected a finite number, got 'nan'",
        ),
        (["sample", "{cond}", "--classifier", "{score}"], "guides an unconditional run"),
        (["sample", "{score}", "--label", "1", "--classifier", "{cond}"], "is not a classifier run"),
        (["sample", "{score}", "--classifier-scale", "2"], "add --classifier RUN"),
        (["sample", "{cond}", "--inpaint", "left"], "--inpaint fills in images"),
        (["sample", "{cond}", "--images", "4"], "add --inpaint MASK"),
        (["nll", "{score}", "--unconditional"], "--unconditional evaluates the null label"),
    ],
)
def test_bad_conditional_arguments_are_one_line_and_exit_2(tmp_path, capsys, argv, match):
    runs = (
        {"{score}": str(write_run(tmp_path / "score", steps=2))} if any("{score}" in a for a in argv) else {}
    )
    if any("{cond}" in a for a in argv):
        runs["{cond}"] = str(write_run(tmp_path / "cond", steps=2, kind="conditional"))
    runs["{tmp}"] = str(tmp_path)
    argv = [runs.get(a, a.replace("{tmp}", str(tmp_path))) for a in argv]
    _fails_cleanly(capsys, [*argv, "--out", str(tmp_path / "out")] if argv[0] != "train" else
                   [*argv, "--out", str(tmp_path / "out"), "--steps", "1"], match)  # fmt: skip
