"""Beyond one process: data-parallel training, sharded likelihoods, host reads, per-sample seeds, compile.

Prints, with interleaved repeats and medians where a section repeats:

1. train: training throughput (examples/s) of ``Trainer`` on ScoreMLP(2, 256, 3), global batch 1024,
   on 1 process (1 and 2 threads) and on 2 processes of 1 thread (torchrun, gloo), plus gradient
   accumulation 4 on 1 process.
2. draws: the cost per step of world-size-invariant randomness on 2 processes for the global batch
   G: drawing the whole batch's numbers from the shared stream and keeping the rows
   (``GlobalBatchGenerator``, what the trainer does) against drawing per example from generators
   seeded by the example's global index (``PerSampleGenerator``), and against the rank's own rows
   from one stream (fast, but the result then depends on the number of processes).
3. nll: ``sdegen nll`` throughput (examples/s) on 1 and 2 processes (fixed chunks, per-example
   seeds), and the cost of a result independent of the batch size (chunks of 1) per example.
4. sync: per-NFE cost of sampling (DDPM, ScoreMLP, B = 1000) with the score's finiteness read back
   at every evaluation (``check_finite_every=1``) or once per run (None, the default), and with
   per-sample seeds against one generator.
5. compile (``--compile``, slow): ``torch.compile`` of the network for sampling and for the
   likelihood's forward + VJP: ms per NFE eager and compiled, and the first-call compile time.

Run: python benchmarks/bench_distributed.py [--quick] [--compile] [--sections train,draws,nll,sync]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import sdegen
from sdegen import VPSDE, DDPMSampler
from sdegen import data as D
from sdegen.losses import DenoisingScoreMatching
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.random import GlobalBatchGenerator, PerSampleGenerator, derive_seed
from sdegen.training import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def _model(seed: int = 0) -> ScoreModel:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ScoreModel(ScoreMLP(2, 256, 3), VPSDE(), NoisePrediction())


def _torchrun(processes: int, threads: int, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    subprocess.run([*cmd, *args], check=True, env=env, stdout=subprocess.DEVNULL)


# -- 1. training throughput ---------------------------------------------------------------------------
def train_worker(out: str, steps: int, batch: int, accumulation: int, threads: int) -> None:
    torch.set_num_threads(threads)
    cfg = TrainConfig(
        steps=steps + 5,
        lr=1e-3,
        warmup_steps=1,
        log_every=10**6,
        checkpoint_every=0,
        progress=False,
        grad_accumulation=accumulation,
    )
    trainer = Trainer(_model(), DenoisingScoreMatching(), D.DistributionBatches(D.ring(), batch), cfg)
    trainer.fit(5)  # warm-up
    trainer.world.barrier()
    start = time.perf_counter()
    trainer.fit(steps + 5)
    trainer.world.barrier()
    seconds = time.perf_counter() - start
    if trainer.world.is_main:
        Path(out).write_text(json.dumps({"examples_per_s": steps * batch / seconds}))


def bench_train(quick: bool) -> None:
    steps, batch = (20, 1024) if quick else (60, 1024)
    rows = []
    configs = [(1, 1, 1), (1, 2, 1), (2, 1, 1), (1, 1, 4)]
    results: dict[tuple, list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(1 if quick else 3):
            for processes, threads, accumulation in configs:
                out = Path(tmp) / "train.json"
                _torchrun(
                    processes,
                    threads,
                    __file__,
                    "--worker",
                    "train",
                    "--out",
                    str(out),
                    f"--steps={steps}",
                    f"--batch={batch}",
                    f"--accumulation={accumulation}",
                    f"--threads={threads}",
                )
                results[(processes, threads, accumulation)].append(
                    json.loads(out.read_text())["examples_per_s"]
                )
    base = statistics.median(results[(1, 1, 1)])
    print(f"\n## Training throughput: ScoreMLP(2, 256, 3), DSM, global batch {batch}, {steps} steps")
    print("| processes x threads | grad accumulation | examples/s | vs 1 x 1 |")
    print("|---|---|---|---|")
    for (processes, threads, accumulation), values in results.items():
        v = statistics.median(values)
        rows.append((processes, threads, accumulation, v))
        print(f"| {processes} x {threads} | {accumulation} | {v:,.0f} | {v / base:.2f} |")


# -- 2. world-size-invariant randomness ----------------------------------------------------------------
def bench_draws(quick: bool) -> None:
    repeats = 5 if quick else 21
    print("\n## Random numbers of one training step on process 0 of 2: times t [G] and noise [G, ...]")
    print(
        "| global batch G | example shape | own rows, one stream (not invariant) | whole batch, sliced (trainer) | per-example generators |"
    )
    print("|---|---|---|---|---|")
    for G, shape in [(1024, (2,)), (128, (3, 32, 32))]:
        g = torch.Generator().manual_seed(0)
        rows = G // 2

        def local(g=g, rows=rows, shape=shape):
            torch.rand(rows, generator=g)
            torch.randn((rows, *shape), generator=g)

        def sliced(g=g, G=G, rows=rows, shape=shape):
            draws = GlobalBatchGenerator(g, G).rows(0, rows)
            sdegen.random.rand((rows,), draws)
            sdegen.random.randn((rows, *shape), draws)

        def per_example(rows=rows, shape=shape, step=[0]):  # noqa: B006 - a counter across calls
            # Seeds from (step, global index): new generators at every step.
            step[0] += 1
            p = PerSampleGenerator([derive_seed(0, step[0], i) for i in range(rows)])
            sdegen.random.rand((rows,), p)
            sdegen.random.randn((rows, *shape), p)

        times = {f: [] for f in (local, sliced, per_example)}
        for _ in range(repeats):
            for f in times:
                start = time.perf_counter()
                f()
                times[f].append(time.perf_counter() - start)
        ms = [statistics.median(v) * 1e3 for v in times.values()]
        print(f"| {G} | {shape} | {ms[0]:.3f} ms | {ms[1]:.3f} ms | {ms[2]:.3f} ms |")


# -- 3. sharded likelihood ----------------------------------------------------------------------------
def bench_nll(quick: bool) -> None:
    n = 200 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        sys.path.insert(0, str(ROOT / "tests"))
        from _runs import write_run

        write_run(run, steps=200, hidden=128)
        rates = {}
        for processes in (1, 2):
            out = Path(tmp) / f"nll{processes}"
            # "--" ends torchrun's own options, which would take "--n" for an abbreviation of theirs.
            argv = [
                "-m",
                "sdegen",
                "--",
                "nll",
                str(run),
                "--n",
                str(n),
                "--batch-size",
                "100",
                "--out",
                str(out),
            ]
            _torchrun(processes, 1, *argv)
            report = json.loads((out / "nll.json").read_text())
            rates[processes] = (n / report["seconds"], report["score_evaluations"], report["nll"])
        torch.set_num_threads(1)
        from sdegen.run.config import load_run

        trained = load_run(run, torch.device("cpu"))
        x = trained.data.distribution.sample(100, torch.Generator().manual_seed(0))
        timings = {}
        for chunk in (100, 1):
            start = time.perf_counter()
            nfe = 0
            for a in range(0, 20 if chunk == 1 else 100, chunk):
                g = PerSampleGenerator([derive_seed(0, i) for i in range(a, a + chunk)])
                res = sdegen.log_likelihood(x[a : a + chunk], trained.sde, trained.model, generator=g)
                nfe += res.nfe
            count = 20 if chunk == 1 else 100
            timings[chunk] = ((time.perf_counter() - start) / count * 1e3, nfe / (count // chunk))
    print(
        f"\n## sdegen nll: ring, ScoreMLP(2, 128, 1) after 200 steps, exact trace, n = {n}, --batch-size 100"
    )
    print("| processes x threads | examples/s | NFE (all chunks) | NLL |")
    print("|---|---|---|---|")
    for p, (rate, nfe, nll) in rates.items():
        print(f"| {p} x 1 | {rate:,.1f} | {nfe} | {nll:.4f} |")
    print("\n| chunk size | ms per example | NFE per solve |")
    print("|---|---|---|")
    for chunk, (ms, nfe) in timings.items():
        print(f"| {chunk} | {ms:.1f} | {nfe:.0f} |")


# -- 4. host reads, per-sample seeds ------------------------------------------------------------------
def bench_sync(quick: bool) -> None:
    torch.set_num_threads(1)
    model = _model().eval()
    sde = model.sde
    steps, B = (50, 1000) if quick else (200, 1000)
    x_T = torch.randn(B, 2, generator=torch.Generator().manual_seed(0))
    configs = {
        "check_finite_every=None (default), torch.Generator": dict(check_finite_every=None),
        "check_finite_every=1, torch.Generator": dict(check_finite_every=1),
        "check_finite_every=None, PerSampleGenerator": dict(check_finite_every=None, per_sample=True),
    }
    times = {k: [] for k in configs}
    for _ in range(3 if quick else 7):
        for name, opts in configs.items():
            opts = dict(opts)
            g = (
                PerSampleGenerator(range(B))
                if opts.pop("per_sample", False)
                else torch.Generator().manual_seed(1)
            )
            start = time.perf_counter()
            out = sdegen.sample(sde, model, None, DDPMSampler(steps), x_T=x_T, generator=g, **opts)
            times[name].append((time.perf_counter() - start) / out.nfe)
    base = statistics.median(times["check_finite_every=None (default), torch.Generator"])
    print(f"\n## Sampling cost per NFE: DDPM, ScoreMLP(2, 256, 3), B = {B}, {steps} steps, CPU")
    print("| configuration | ms / NFE | vs default |")
    print("|---|---|---|")
    for name, values in times.items():
        v = statistics.median(values)
        print(f"| {name} | {v * 1e3:.3f} | {v / base:.3f} |")


# -- 5. torch.compile -----------------------------------------------------------------------------------
def bench_compile(quick: bool) -> None:
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    torch.set_num_threads(1)
    B, steps = 1000, 50
    x_T = torch.randn(B, 2, generator=torch.Generator().manual_seed(0))
    x = x_T * 0.5
    rows = []
    for compiled in (False, True):
        model = _model().eval()
        if compiled:
            model.net.compile()
        start = time.perf_counter()
        sdegen.sample(model.sde, model, None, DDPMSampler(2), x_T=x_T)
        first_sample = time.perf_counter() - start
        start = time.perf_counter()
        out = sdegen.sample(model.sde, model, None, DDPMSampler(steps), x_T=x_T)
        ms_sample = (time.perf_counter() - start) / out.nfe * 1e3
        start = time.perf_counter()
        sdegen.log_likelihood(x[:B], model.sde, model, rtol=1e-2, atol=1e-2)
        first_nll = time.perf_counter() - start
        start = time.perf_counter()
        res = sdegen.log_likelihood(x[:B], model.sde, model, generator=torch.Generator().manual_seed(0))
        ms_nll = (time.perf_counter() - start) / res.nfe * 1e3
        rows.append(("compiled" if compiled else "eager", first_sample, ms_sample, first_nll, ms_nll))
    print(f"\n## torch.compile of ScoreMLP(2, 256, 3), B = {B}, CPU, 1 thread")
    print(
        "| network | first sampling call (s) | sampling ms / NFE | first likelihood call (s) | likelihood ms / NFE |"
    )
    print("|---|---|---|---|---|")
    for name, fs, ms, fn, mn in rows:
        print(f"| {name} | {fs:.1f} | {ms:.3f} | {fn:.1f} | {mn:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    p.add_argument("--compile", action="store_true", help="also the torch.compile section (minutes)")
    p.add_argument("--sections", default="train,draws,nll,sync", help="comma-separated sections")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=50, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1024, help=argparse.SUPPRESS)
    p.add_argument("--accumulation", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker == "train":
        train_worker(args.out, args.steps, args.batch, args.accumulation, args.threads)
        return
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores; no GPU was lent to this benchmark run"
        if not torch.cuda.is_available()
        else f"torch {torch.__version__}, {torch.cuda.get_device_name()}"
    )
    sections = {"train": bench_train, "draws": bench_draws, "nll": bench_nll, "sync": bench_sync}
    for name in args.sections.split(","):
        sections[name](args.quick)
    if args.compile:
        bench_compile(args.quick)


if __name__ == "__main__":
    main()
