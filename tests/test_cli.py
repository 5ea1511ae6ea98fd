"""The sdegen command: help for every subcommand, a tiny train/resume round trip, and one-line
errors with exit code 2 for bad arguments and missing files."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _runs import write_run

from sdegen.cli import main
from sdegen.run import registry

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--steps",
    "30",
    "--hidden",
    "32",
    "--depth",
    "2",
    "--batch-size",
    "64",
    "--warmup",
    "5",
    "--log-every",
    "10",
    "--eval-every",
    "15",
    "--n-eval",
    "64",
    "--no-progress",
]


def _fails_cleanly(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err


@pytest.mark.parametrize("command", ["train", "sample", "nll", "demo"])
def test_every_subcommand_has_help_with_defaults(capsys, command):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--device", "--seed", "--out"):
        assert option in text
    assert "(default: cpu)" in text and "(default: 0)" in text


def test_train_writes_a_run_directory_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["name"] == "ring" and cfg["model"]["name"] == "mlp" and cfg["train"]["steps"] == 30
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 15, 20, 30]
    assert "held_out_loss" in records[1] and "loss" in records[0]
    assert (out / "checkpoints" / "last.pt").is_file()
    _fails_cleanly(capsys, ["train", "--out", str(out), *TINY], "already holds a run; pass --resume")
    assert main(["train", "--out", str(out), "--resume", "--steps", "40", "--no-progress"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 15, 20, 30, 40]
    assert main(["train", "--out", str(out), "--resume", "--steps", "40", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--steps", "-3"], "argument --steps: expected a positive integer, got '-3'"),
        (["train", "--lr", "abc"], "argument --lr: expected a positive number, got 'abc'"),
        (["train", "--data", "imagenet"], "argument --data: invalid choice: 'imagenet'"),
        (["train", "--data", "mnist"], "--data mnist needs --data-root DIR"),
        (["train", "--data", "mnist", "--data-root", "{tmp}/nowhere"], "MNIST not found under"),
        (["train", "--data", "folder", "--data-root", "{tmp}/nowhere"], "does not exist"),
        (["train", "--model", "unet-tiny"], "--model unet-tiny needs image data"),
        (
            ["train", "--device", "cuda:7"]
            if not torch.cuda.is_available()
            else ["train", "--device", "tpu"],
            "--device",
        ),
        (["train", "--device", "gpu0"], "--device 'gpu0' is not a torch device"),
        (["train", "--loss", "ncsn"], "invalid loss settings: NCSN's noise levels are those of a VESDE"),
        (["train", "--data", "moons", "--loss", "esm"], "--loss esm regresses onto the exact score"),
        (["train", "--preset", "ncsn", "--ncsn-levels", "1"], "invalid loss settings: levels must be >= 2"),
        (["train", "--resume", "--out", "{tmp}/none"], "config.json' does not exist"),
        (["sample", "{tmp}/none"], "config.json' does not exist"),
        (["nll", "{tmp}/none"], "config.json' does not exist"),
        (["sample"], "give a run directory RUN, or a brought model with --model SPEC"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[:1] == ["train"] and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    _fails_cleanly(capsys, argv, match)


def test_missing_or_corrupt_checkpoint_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 3])
    _fails_cleanly(capsys, ["train", "--out", str(out), "--resume", "--steps", "40"], "is corrupt")
    assert ckpt.read_bytes() == good[: len(good) // 3]  # nothing was written over it
    ckpt.unlink()
    _fails_cleanly(capsys, ["sample", str(out)], "last.pt' does not exist")


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ring"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_figures_and_the_held_out_nll(ring_run):
    records = [json.loads(line) for line in (ring_run / "metrics.jsonl").read_text().splitlines()]
    assert {"held_out_nll", "held_out_loss"} <= records[-1].keys()
    for name in ("samples.png", "samples_0000030.png", "density.png", "trajectories.png"):
        assert (ring_run / "figures" / name).stat().st_size > 1000, name


@pytest.mark.parametrize("sampler", ["reverse-sde", "ode", "pc", "ddpm"])
def test_sample_writes_samples_a_figure_and_a_report(ring_run, tmp_path, capsys, sampler):
    out = tmp_path / sampler
    steps = [] if sampler == "ode" else ["--steps", "20"]  # ode is adaptive: --steps is an error
    argv = ["sample", str(ring_run), "--sampler", sampler, *steps, "--n", "50", "--out", str(out)]
    assert main(argv) == 0
    x = torch.load(out / "samples.pt", weights_only=True)
    assert x.shape == (50, 2) and torch.isfinite(x).all()
    report = json.loads((out / "samples.json").read_text())
    assert report["n"] == 50 and report["nfe"] > 0 and "energy_distance" in report
    assert (out / "figures" / f"samples-{sampler}.png").is_file()
    assert "energy distance to fresh data" in capsys.readouterr().out


# (sampler, grid, score evaluations at --steps 4): one per family end to end; every entry below.
FEW_STEP = [("dpmpp-2m", "karras", 4), ("dpmpp-2s", "uniform", 8), ("edm-heun", "default", 8)]


@pytest.mark.parametrize("sampler, grid, nfe", FEW_STEP, ids=[f"{s}-{g}" for s, g, _ in FEW_STEP])
def test_few_step_samplers_take_steps_and_a_grid(ring_run, tmp_path, sampler, grid, nfe):
    argv = ["sample", str(ring_run), "--sampler", sampler, "--steps", "4", "--grid", grid, "--n", "50"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "samples.json").read_text())
    assert report["nfe"] == nfe and report["grid"] == grid and "steps=4" in report["repr"]
    x = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert x.shape == (50, 2) and torch.isfinite(x).all()


def test_nfe_is_per_sample_path_and_the_total_is_reported_beside_it(ring_run, tmp_path, capsys):
    """NFE counts the evaluations of one batch (of each sample path), as samplers are compared; the
    batched evaluations of all batches are the compute spent."""
    argv = [
        "sample",
        str(ring_run),
        "--sampler",
        "dpmpp-2m",
        "--steps",
        "4",
        "--n",
        "50",
        "--batch-size",
        "20",
    ]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "samples.json").read_text())
    assert (report["nfe"], report["batches"], report["score_evaluations"]) == (4, 3, 12)
    assert "NFE 4 per batch x 3 batches = 12 score evaluations" in capsys.readouterr().out
    argv = ["nll", str(ring_run), "--n", "30", "--batch-size", "10", "--rtol", "1e-3", "--atol", "1e-3"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "nll.json").read_text())
    assert report["batches"] == 3 and report["nfe"] * 3 == pytest.approx(
        report["score_evaluations"], abs=0.15
    )


@pytest.mark.parametrize("grid", ["default", "uniform", "logsnr", "karras"])
def test_every_fixed_step_sampler_entry_builds_its_grid(grid):
    from sdegen.samplers import KarrasGrid, LogSNRGrid, UniformGrid

    kinds = {"uniform": UniformGrid, "logsnr": LogSNRGrid, "karras": KarrasGrid}
    for name, spec in registry.SAMPLERS.items():
        if not spec.fixed_steps:
            continue
        sampler = spec.factory(registry.SamplerOptions(steps=4, grid=grid))
        assert sampler.steps == 4, name
        if grid != "default":
            assert type(sampler.grid) is kinds[grid], (name, sampler.grid)


def test_a_grid_for_an_adaptive_sampler_is_a_usage_error(ring_run, capsys):
    _fails_cleanly(
        capsys,
        ["sample", str(ring_run), "--sampler", "ode", "--grid", "karras"],
        "--grid karras applies to",
    )


def test_edm_and_cosine_sdes_are_choices_that_train_and_sample(tmp_path):
    from sdegen.run.registry import SDES

    assert SDES["cosine"].factory(cosine_s=0.01).s == 0.01
    run_dir = tmp_path / "edm"
    argv = ["train", "--out", str(run_dir), "--sde", "edm", "--sigma-max", "5", *TINY, "--steps", "2"]
    assert main([*argv, "--n-eval", "16"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["sde"] == {"name": "edm", "sigma_max": 5.0}
    out = tmp_path / "samples"
    argv = ["sample", str(run_dir), "--sampler", "dpmpp-2m", "--steps", "5", "--n", "16", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "samples.json").read_text())
    assert report["eps"] == 0.002 and report["nfe"] == 5  # EDM's sigma_min, the SDE's own eps


def test_nll_reports_the_model_and_the_true_nll(ring_run, tmp_path, capsys):
    argv = ["nll", str(ring_run), "--n", "64", "--rtol", "1e-3", "--atol", "1e-3", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "nll.json").read_text())
    assert report["n"] == 64 and "ExactTrace" in report["divergence"]
    # The true NLL of these points is the mixture's: about 3.5 nats for the ring.
    assert 3.0 < report["true_nll"] < 4.2 and report["nll"] > report["true_nll"] - 0.5
    # the standard error over the 64 points: the sd of their -log p / 8
    logp = torch.load(tmp_path / "nll_per_example.pt", weights_only=True)["logp"].double()
    assert (
        report["nll_se"] == pytest.approx(float(logp.std()) / 8, rel=1e-6) and report["nll_minus_true_se"] > 0
    )
    assert report["nll_minus_true"] == pytest.approx(report["nll"] - report["true_nll"], abs=1e-9)
    out = capsys.readouterr().out
    assert "true NLL of the same points" in out and "nats of x in R^2, the data's own space per point" in out
    assert f"NLL {report['nll']:.4f} +- {report['nll_se']:.2g}" in out


def test_ncsn_preset_trains_on_the_ve_levels_and_samples_and_evaluates_there(tmp_path, capsys):
    out = tmp_path / "ncsn"
    # The preset sets the SDE, its sigmas, the loss and its levels; options given explicitly win.
    assert main(["train", "--preset", "ncsn", "--sigma-max", "5", "--out", str(out), *TINY]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sde"] == {"name": "ve", "sigma_min": 0.01, "sigma_max": 5.0}
    assert cfg["loss"] == {"name": "ncsn", "eps": 1e-5, "levels": 10}
    # NCSN's smallest level lies at t = T log(2) / (2 log(sigma_max / sigma_min)); sampling (annealed
    # Langevin on the training levels by default) and the likelihood stop there.
    tau = math.log(2) / (2 * math.log(5.0 / 0.01))
    s = tmp_path / "s"
    assert main(["sample", str(out), "--n", "16", "--n-steps-each", "2", "--out", str(s)]) == 0
    report = json.loads((s / "samples.json").read_text())
    assert report["sampler"] == "annealed-langevin" and report["eps"] == pytest.approx(tau, rel=1e-12)
    assert "CustomGrid(<10 times from 1 to " in report["repr"] and report["nfe"] == 9 * 2
    assert "n_steps_each=2, snr=0.22" in report["repr"]
    assert main(["nll", str(out), "--n", "16", "--rtol", "1e-3", "--atol", "1e-3", "--out", str(s)]) == 0
    assert json.loads((s / "nll.json").read_text())["eps"] == pytest.approx(tau, rel=1e-12)
    capsys.readouterr()


def test_the_new_loss_names_build_the_score_matching_family():
    from sdegen.losses import ExplicitScoreMatching, ImplicitScoreMatching, NCSNLoss
    from sdegen.nn import ScoreMLP
    from sdegen.parameterization import ScoreModel
    from sdegen.run.registry import DATASETS, LOSSES, LossOptions
    from sdegen.sde import VESDE

    sde, ring = VESDE(0.01, 10.0), DATASETS["ring"].factory({"name": "ring"})
    built = {
        name: LOSSES[name].factory(LossOptions(1e-5, sde, ring, {"name": name, "eps": 1e-5, "levels": 7}))
        for name in ("esm", "ism", "ism-hutchinson", "ncsn")
    }
    assert isinstance(built["esm"], ExplicitScoreMatching)
    assert "ExactTrace" in repr(built["ism"]) and "Hutchinson" in repr(built["ism-hutchinson"])
    assert isinstance(built["ism"], ImplicitScoreMatching) and built["ncsn"].levels.levels == 7
    assert isinstance(built["ncsn"], NCSNLoss)
    model = ScoreModel(ScoreMLP((2,), hidden=8, depth=1), sde)
    x0 = ring.distribution.sample(16, torch.Generator().manual_seed(0))
    for loss in built.values():
        assert torch.isfinite(loss(model, x0, generator=torch.Generator().manual_seed(1)))


def test_image_run_writes_a_grid_and_bits_per_dim(tmp_path, capsys):
    out = tmp_path / "digits"
    argv = [
        "train",
        "--data",
        "digits",
        "--model",
        "unet-tiny",
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--n-eval",
        "8",
        "--eval-every",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < record["held_out_bpd"] < 40
    assert (out / "figures" / "samples.png").is_file()
    assert main(["nll", str(out), "--n", "4", "--rtol", "1e-3", "--atol", "1e-3"]) == 0
    report = json.loads((out / "nll.json").read_text())
    assert "Hutchinson" in report["divergence"] and report["bits_per_dim"] > 0
    # bits/dim are affine in log p: their SE is the NLL's / (D ln 2), D = 64 pixels
    assert report["bits_per_dim_se"] == pytest.approx(report["nll_se"] / (64 * math.log(2)), rel=1e-9)
    assert "in [-1, 1]^(1x8x8)" in report["space"]
    assert "bits/dim on the pixels' own 0..16 scale (17 levels)" in capsys.readouterr().out


def test_demo_runs_end_to_end_with_tiny_settings(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--out",
        str(out),
        "--steps",
        "30",
        "--hidden",
        "16",
        "--n-samples",
        "100",
        "--n-nll",
        "50",
        "--sampler-steps",
        "20",
        "--grid",
        "8",
        "--no-progress",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for phrase in (
        "held-out NLL",
        "model - true",
        "reverse SDE",
        "probability-flow ODE",
        "predictor-corrector",
        "DPM-Solver++(2M), 10 steps",
    ):
        assert phrase in text
    report = json.loads((out / "report.json").read_text())
    assert set(report["samplers"]) == {"reverse-sde", "ode", "pc", "dpmpp-2m-10", "dpmpp-2m-20"}
    assert [report["samplers"][f"dpmpp-2m-{k}"]["nfe"] for k in (10, 20)] == [10, 20]
    assert all(row["energy_distance"] == row["energy_distance"] for row in report["samplers"].values())
    assert report["nll"]["points"] == 50 and set(report["nll"]["true_nats"]) == {"mean", "se"}
    for name in ("samples.png", "trajectories.png", "density.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    # The demo's directory is a run directory: the other commands work on it.
    assert main(["sample", str(out), "--sampler", "ode", "--n", "20", "--out", str(tmp_path / "s")]) == 0
    # A second demo in the same directory replaces the first one's log instead of appending to it.
    assert main(argv) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_python_dash_m_runs_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "sdegen", "train", "--steps", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "positive integer" in proc.stderr


def test_every_registry_entry_is_a_choice_and_a_new_entry_is_one_line(
    ring_run, tmp_path, capsys, monkeypatch
):
    from sdegen.samplers import ReverseSDESampler

    train_help = main(["train", "--help"]) == 0 and capsys.readouterr().out
    for registry_, option in [
        (registry.DATASETS, "--data"),
        (registry.SDES, "--sde"),
        (registry.MODELS, "--model"),
        (registry.PARAMETERIZATIONS, "--parameterization"),
        (registry.LOSSES, "--loss"),
    ]:
        for name in registry_:
            assert name in train_help, (option, name)
    for opt, _ in registry.sde_options().values():
        assert "--" + opt.name.replace("_", "-") in train_help
    # A sampler added by one entry is usable by `sdegen sample` and titled in its report.
    spec = registry.SamplerSpec(
        lambda o: ReverseSDESampler("heun", steps=o.steps), "reverse SDE (Heun)", "Heun"
    )
    monkeypatch.setitem(registry.SAMPLERS, "heun", spec)
    argv = ["sample", str(ring_run), "--sampler", "heun", "--steps", "5", "--n", "20", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "samples.json").read_text())
    assert report["sampler"] == "heun" and "method='heun'" in report["repr"]
    assert "reverse SDE (Heun)" in capsys.readouterr().out


def test_sample_stops_at_the_sdes_own_eps_by_default(ring_run, tmp_path, capsys):
    ve = write_run(tmp_path / "ve", sde="ve", steps=2)
    for run_dir, eps in [(ring_run, 1e-3), (ve, 1e-5)]:
        out = tmp_path / f"s-{run_dir.name}"
        argv = ["sample", str(run_dir), "--sampler", "ddpm" if eps == 1e-3 else "pc", "--steps", "3"]
        assert main([*argv, "--n", "8", "--out", str(out)]) == 0
        assert json.loads((out / "samples.json").read_text())["eps"] == eps
    assert main(["sample", str(ve), "--eps", "0.2", "--steps", "3", "--n", "8", "--out", str(out)]) == 0
    assert json.loads((out / "samples.json").read_text())["eps"] == 0.2
    capsys.readouterr()
    _fails_cleanly(
        capsys, ["sample", str(ve), "--eps", "2"], "--eps 2 must be below the SDE's end time T = 1"
    )


@pytest.mark.parametrize(
    "argv, match",
    [
        (
            ["train", "--beta-min", "30", "--beta-max", "1"],
            "invalid SDE settings: beta_max must be > beta_min",
        ),
        (["train", "--ema-decay", "1.5"], "invalid training settings: ema_decay must lie in [0, 1)"),
        (["train", "--sde", "ve", "--sigma-min", "-1"], "invalid SDE settings: sigma_min"),
        (
            ["train", "--weight-decay", "-1"],
            "invalid training settings: weight_decay must be a finite number >= 0",
        ),
    ],
)
def test_settings_the_library_refuses_are_usage_errors(tmp_path, capsys, argv, match):
    _fails_cleanly(capsys, [*argv, "--out", str(tmp_path / "run")], match)
    assert not (tmp_path / "run").exists()


def test_an_error_after_the_arguments_were_accepted_is_a_failure_not_a_usage_error(
    ring_run, tmp_path, capsys, monkeypatch
):
    import sdegen

    def broken(*args, **kwargs):
        raise ValueError("a library bug")

    monkeypatch.setattr(sdegen, "sample", broken)
    argv = ["sample", str(ring_run), "--n", "8", "--steps", "2", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("sdegen sample: failed: ValueError: a library bug"), err
    monkeypatch.setenv("SDEGEN_TRACEBACK", "1")
    with pytest.raises(ValueError, match="a library bug"):
        main(argv)


DISTIL = ["--hidden", "32", "--depth", "2", "--batch-size", "128", "--warmup", "5", "--no-progress"]
DISTIL += ["--log-every", "50", "--eval-every", "1000", "--checkpoint-every", "100", "--n-eval", "64"]


def _relative_score_error(student, teacher, data, seed=0):
    """E sigma^2 ||s_S - s_T||^2 / E sigma^2 ||s_T||^2 at t ~ U[0.05, 1] on noised data points."""
    g = torch.Generator().manual_seed(seed)
    x0 = data.distribution.sample(2000, g)
    t = 0.05 + 0.95 * torch.rand(2000, generator=g)
    alpha, sigma = teacher.sde.alpha(t), teacher.sde.sigma(t)
    xt = alpha[:, None] * x0 + sigma[:, None] * torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        s_t, s_s = teacher(t, xt), student(t, xt)
    w = sigma[:, None] ** 2
    return float((w * (s_s - s_t) ** 2).sum() / (w * s_t**2).sum())


def test_esm_with_a_teacher_distils_the_teachers_score(tmp_path, capsys):
    from sdegen.run.config import build_run, load_run, read_config

    cpu = torch.device("cpu")
    teacher_dir = write_run(tmp_path / "teacher", data="moons", steps=150, hidden=32, lr=3e-3)
    student_dir = tmp_path / "student"
    argv = [
        "train",
        "--data",
        "moons",
        "--loss",
        "esm",
        "--teacher",
        str(teacher_dir),
        "--out",
        str(student_dir),
    ]
    assert main([*argv, "--steps", "300", "--lr", "3e-3", *DISTIL]) == 0
    cfg = read_config(student_dir)
    assert cfg.loss["teacher"] == str(teacher_dir.resolve()) and len(cfg.loss["teacher_checksum"]) == 64
    teacher, student = load_run(teacher_dir, cpu), load_run(student_dir, cpu)
    fresh = build_run(cfg, cpu).model  # the student's initialisation
    before = _relative_score_error(fresh, teacher.model, teacher.data)
    after = _relative_score_error(student.model, teacher.model, teacher.data)
    # Regression onto the teacher's score: the student's network (the same family) reaches it.
    assert before > 0.3 and after < 0.02, (before, after)

    # The teacher must describe the same p_t: another SDE or data set is refused before any work.
    _fails_cleanly(
        capsys,
        [*argv[:-1], str(tmp_path / "s2"), "--sde", "ve", *DISTIL],
        "give the student the teacher's SDE",
    )
    _fails_cleanly(
        capsys,
        [*argv[:2], "ring", *argv[3:-1], str(tmp_path / "s3"), *DISTIL],
        "distil on the teacher's data",
    )
    assert not (tmp_path / "s2").exists() and not (tmp_path / "s3").exists()

    # Sampling from the student needs its network only; resuming needs the very teacher it started with.
    samples = tmp_path / "samples"
    assert main(["sample", str(student_dir), "--n", "8", "--steps", "4", "--out", str(samples)]) == 0
    capsys.readouterr()
    write_run(teacher_dir.parent / "other", data="moons", steps=10, hidden=32)
    ckpt = teacher_dir / "checkpoints" / "last.pt"
    ckpt.write_bytes((teacher_dir.parent / "other" / "checkpoints" / "last.pt").read_bytes())
    resume = ["train", "--out", str(student_dir), "--resume", "--steps", "310", "--no-progress"]
    _fails_cleanly(capsys, resume, "has changed since this run started")
    _fails_cleanly(capsys, [*resume, "--teacher", str(tmp_path / "other")], "cannot change the settings")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--teacher", "{tmp}"], "--teacher is an option of --loss esm; this run trains with --loss dsm"),
        (
            ["--ncsn-levels", "4"],
            "--ncsn-levels is an option of --loss ncsn; this run trains with --loss dsm",
        ),
        (["--loss", "esm", "--teacher", "{tmp}/none"], "config.json' does not exist"),
    ],
)
def test_an_option_of_another_loss_or_a_missing_teacher_is_a_usage_error(tmp_path, capsys, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    _fails_cleanly(capsys, ["train", *argv, "--out", str(tmp_path / "run")], match)
    assert not (tmp_path / "run").exists()


def test_a_teacher_of_another_kind_is_refused(tmp_path, capsys):
    teacher = write_run(tmp_path / "teacher", kind="conditional", steps=2)
    argv = ["train", "--loss", "esm", "--teacher", str(teacher), "--out", str(tmp_path / "run")]
    _fails_cleanly(
        capsys, argv, "is a class-conditional score model; distilling an unconditional score model"
    )
    assert not (tmp_path / "run").exists()


def test_preview_every_saves_x0_hat_of_the_first_batch_every_k_steps(ring_run, tmp_path, capsys):
    """DDIM's x0_hat after step k is Tweedie's estimate at the state it reached; the last step has
    none, so its preview is the state itself: the samples of the first batch."""
    out = tmp_path / "previewed"
    argv = ["sample", str(ring_run), "--sampler", "ddim", "--steps", "6", "--n", "24", "--batch-size", "8"]
    assert main([*argv, "--preview-every", "2", "--no-progress", "--out", str(out)]) == 0
    previews = sorted((out / "previews").glob("*.pt"))
    assert [p.stem for p in previews] == ["step-0002", "step-0004", "step-0006"]
    records = [torch.load(p, weights_only=True) for p in previews]
    assert [r["what"] for r in records] == ["x0_hat", "x0_hat", "x"]
    assert all(r["x"].shape == (8, 2) for r in records)  # the first batch only
    samples = torch.load(out / "samples.pt", weights_only=True)
    torch.testing.assert_close(records[-1]["x"], samples[:8], rtol=0, atol=0)
    assert all(p.with_suffix(".png").is_file() for p in previews)
    # x0_hat moves towards the samples as t decreases
    err = [float((r["x"] - samples[:8]).norm()) for r in records]
    assert err[0] > err[1] > err[2] == 0.0


def test_preview_every_is_refused_for_an_adaptive_sampler_and_a_bad_value(ring_run, tmp_path, capsys):
    _fails_cleanly(
        capsys,
        ["sample", str(ring_run), "--sampler", "ode", "--preview-every", "2", "--out", str(tmp_path / "o")],
        "--preview-every is an option of --sampler",
    )
    _fails_cleanly(
        capsys,
        ["sample", str(ring_run), "--preview-every", "0", "--out", str(tmp_path / "o")],
        "--preview-every",
    )
