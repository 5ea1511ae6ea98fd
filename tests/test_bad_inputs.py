"""Bad input, table-driven: every case must raise the stated exception type before any work, with a
message that names the argument (or option) at fault -- never a raw traceback from torch,
torchdiffeq or torchsde, never a hang, never a silent result.

Each row is ``(id, call, exception type, text the message must contain)``; the CLI rows run
``sdegen`` and expect exit status 2 with that text on one line of stderr.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import sdegen
from sdegen import data as D
from sdegen.analytic import GaussianMixture
from sdegen.cli import main
from sdegen.likelihood import ExactTrace, Hutchinson, Quantization, bits_per_dim, dequantize
from sdegen.losses import (
    DDPMLoss,
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    LikelihoodWeighting,
    NCSNLevels,
    NCSNLoss,
    SlicedScoreMatching,
)
from sdegen.nn import ScoreMLP, UNet
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.samplers import (
    AncestralSampling,
    AnnealedLangevinSampler,
    DDPMSampler,
    EulerMaruyama,
    LangevinCorrector,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseDiffusion,
    ReverseSDESampler,
)
from sdegen.training import HeldOutLoss, HeldOutNLL, TrainConfig, Trainer

VP = sdegen.VPSDE()
MIX = GaussianMixture.ring()
SCORE = MIX.score(VP)
X = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
RING = D.ring(4, radius=2.0, std=0.3)


def _model(dtype=torch.float32):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ScoreModel(ScoreMLP(2, hidden=8, depth=1, time_dim=8), VP, NoisePrediction()).to(dtype)


MODEL = _model()


def _trainer(**kw):
    args = {"model": MODEL, "loss": DenoisingScoreMatching(), "data": D.DistributionBatches(RING, 8)}
    args.update(kw)
    return Trainer(args.pop("model"), args.pop("loss"), args.pop("data"), TrainConfig(progress=False), **args)


def _ll(x=X, **kw):
    return sdegen.log_likelihood(x, VP, kw.pop("score_fn", SCORE), **kw)


def _sample(shape=(4, 2), **kw):
    return sdegen.sample(
        kw.pop("sde", VP), kw.pop("score_fn", SCORE), shape, kw.pop("sampler", DDPMSampler(steps=2)), **kw
    )


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    error: type[BaseException]
    names: str  # the message must contain this: the argument and, where useful, the value


def inference_mode_ll():
    with torch.inference_mode():
        return _ll(divergence=ExactTrace())


API = [
    # -- forward SDEs ------------------------------------------------------------------------------
    Case("vp-beta-min-negative", lambda: sdegen.VPSDE(beta_min=-1.0), ValueError, "beta_min"),
    Case("vp-beta-order", lambda: sdegen.VPSDE(beta_min=5.0, beta_max=1.0), ValueError, "beta_max"),
    Case("vp-beta-nan", lambda: sdegen.VPSDE(beta_min=math.nan), ValueError, "beta_min"),
    Case("vp-beta-inf", lambda: sdegen.VPSDE(beta_max=math.inf), ValueError, "beta_max"),
    Case("vp-beta-string", lambda: sdegen.VPSDE(beta_min="0.1"), TypeError, "beta_min"),
    Case("vp-T-zero", lambda: sdegen.VPSDE(T=0.0), ValueError, "T"),
    Case("vp-T-negative", lambda: sdegen.VPSDE(T=-1.0), ValueError, "T"),
    Case("vp-T-nan", lambda: sdegen.VPSDE(T=math.nan), ValueError, "T"),
    Case("subvp-beta-order", lambda: sdegen.SubVPSDE(beta_min=5.0, beta_max=1.0), ValueError, "beta_max"),
    Case("subvp-T-zero", lambda: sdegen.SubVPSDE(T=0.0), ValueError, "T"),
    Case("ve-sigma-min-zero", lambda: sdegen.VESDE(sigma_min=0.0), ValueError, "sigma_min"),
    Case("ve-sigma-order", lambda: sdegen.VESDE(sigma_min=10.0, sigma_max=1.0), ValueError, "sigma_max"),
    Case("ve-sigma-nan", lambda: sdegen.VESDE(sigma_max=math.nan), ValueError, "sigma_max"),
    Case("ve-sigma-string", lambda: sdegen.VESDE(sigma_min="a"), TypeError, "sigma_min"),
    Case("ve-T-inf", lambda: sdegen.VESDE(T=math.inf), ValueError, "T"),
    # -- SDE methods -------------------------------------------------------------------------------
    Case(
        "marginal-t-above-T", lambda: VP.marginal_prob(torch.full((4,), 2.0), X), ValueError, "t must lie in"
    ),
    Case("marginal-t-negative", lambda: VP.marginal_prob(-0.5, X), ValueError, "t must lie in"),
    Case(
        "marginal-t-nan",
        lambda: VP.marginal_prob(torch.full((4,), math.nan), X),
        ValueError,
        "t contains NaN",
    ),
    Case(
        "marginal-t-shape",
        lambda: VP.marginal_prob(torch.zeros(3), X),
        ValueError,
        "t must be a scalar or have shape [4]",
    ),
    Case("marginal-x0-list", lambda: VP.marginal_prob(0.5, [[1.0, 2.0]]), TypeError, "x0"),
    Case(
        "marginal-x0-int", lambda: VP.marginal_prob(0.5, torch.ones(2, 2, dtype=torch.long)), TypeError, "x0"
    ),
    Case("prior-sampling-shape-zero", lambda: VP.prior_sampling((0, 2)), ValueError, "shape"),
    Case("prior-sampling-shape-str", lambda: VP.prior_sampling("4x2"), TypeError, "shape"),
    Case("prior-logp-list", lambda: VP.prior_logp([1.0, 2.0]), TypeError, "z"),
    Case("discretize-zero", lambda: VP.discretize(0), ValueError, "N"),
    Case("discretize-float", lambda: VP.discretize(10.5), TypeError, "N"),
    Case("reverse-score-not-callable", lambda: VP.reverse(3.0), TypeError, "score_fn"),
    Case("reverse-sde-type", lambda: VP.reverse(SCORE, sde_type="bogus"), ValueError, "sde_type"),
    Case("probability-flow-not-callable", lambda: VP.probability_flow("score"), TypeError, "score_fn"),
    # -- sdegen.sample -----------------------------------------------------------------------------
    Case("sample-sde-wrong", lambda: _sample(sde="vp"), TypeError, "sde must be an sdegen.SDE"),
    Case("sample-score-not-callable", lambda: _sample(score_fn=1.0), TypeError, "score_fn"),
    Case(
        "sample-sampler-wrong", lambda: _sample(sampler="pc"), TypeError, "sampler must be an sdegen Sampler"
    ),
    Case("sample-no-shape", lambda: _sample(shape=None), ValueError, "shape"),
    Case("sample-shape-zero", lambda: _sample(shape=(0, 2)), ValueError, "shape"),
    Case("sample-shape-negative", lambda: _sample(shape=(-4, 2)), ValueError, "shape"),
    Case("sample-shape-string", lambda: _sample(shape="4,2"), TypeError, "shape"),
    Case("sample-eps-negative", lambda: _sample(eps=-1e-3), ValueError, "eps"),
    Case("sample-eps-above-T", lambda: _sample(eps=2.0), ValueError, "eps"),
    Case("sample-eps-nan", lambda: _sample(eps=math.nan), ValueError, "eps"),
    Case("sample-eps-string", lambda: _sample(eps="small"), TypeError, "eps"),
    Case("sample-generator-wrong", lambda: _sample(generator=0), TypeError, "generator"),
    Case("sample-x_T-list", lambda: _sample(shape=None, x_T=[[0.0, 0.0]]), TypeError, "x_T"),
    Case(
        "sample-x_T-int",
        lambda: _sample(shape=None, x_T=torch.zeros(4, 2, dtype=torch.long)),
        TypeError,
        "x_T",
    ),
    Case("sample-x_T-empty", lambda: _sample(shape=None, x_T=torch.zeros(0, 2)), ValueError, "x_T"),
    Case("sample-x_T-scalar", lambda: _sample(shape=None, x_T=torch.tensor(1.0)), ValueError, "x_T"),
    Case(
        "sample-model-shape",
        lambda: _sample(shape=(4, 3), score_fn=MODEL),
        ValueError,
        "network takes samples of shape (2,)",
    ),
    Case(
        "sample-model-dtype",
        lambda: _sample(score_fn=MODEL, dtype=torch.float64),
        TypeError,
        "dtype torch.float64",
    ),
    Case(
        "sample-model-x_T-dtype",
        lambda: _sample(shape=None, x_T=X.double(), score_fn=MODEL),
        TypeError,
        "x_T has dtype",
    ),
    Case(
        "sample-denoise-nonlinear",
        lambda: _sample(sampler=ProbabilityFlowSampler("euler", steps=2), sde=_NonLinear(), denoise=True),
        TypeError,
        "denoise",
    ),
    # -- samplers ----------------------------------------------------------------------------------
    Case("reverse-method", lambda: ReverseSDESampler("rk45"), ValueError, "method"),
    Case("reverse-steps-zero", lambda: ReverseSDESampler(steps=0), ValueError, "steps"),
    Case("reverse-steps-float", lambda: ReverseSDESampler(steps=10.0), TypeError, "steps"),
    Case("reverse-rtol-zero", lambda: ReverseSDESampler(adaptive=True, rtol=0.0), ValueError, "rtol"),
    Case("pf-method", lambda: ProbabilityFlowSampler("rk45"), ValueError, "method"),
    Case("pf-rtol-zero", lambda: ProbabilityFlowSampler(rtol=0.0), ValueError, "rtol"),
    Case("pf-atol-negative", lambda: ProbabilityFlowSampler(atol=-1e-5), ValueError, "atol"),
    Case("pf-fixed-without-steps", lambda: ProbabilityFlowSampler("rk4"), ValueError, "steps"),
    Case("pf-max-steps-zero", lambda: ProbabilityFlowSampler(max_steps=0), ValueError, "max_steps"),
    Case("pf-max-steps-float", lambda: ProbabilityFlowSampler(max_steps=1e4), TypeError, "max_steps"),
    Case(
        "pf-ts-increasing",
        lambda: ProbabilityFlowSampler("euler", ts=[0.1, 0.5]),
        ValueError,
        "ts must be strictly decreasing",
    ),
    Case(
        "pf-ts-nan",
        lambda: ProbabilityFlowSampler("euler", ts=[1.0, math.nan]),
        ValueError,
        "ts must be finite",
    ),
    Case(
        "pf-ts-one",
        lambda: ProbabilityFlowSampler("euler", ts=[1.0]),
        ValueError,
        "ts must be a 1-D tensor of at least 2",
    ),
    Case("pf-ts-string", lambda: ProbabilityFlowSampler("euler", ts="1,0"), TypeError, "ts"),
    Case(
        "pf-ts-beyond-T",
        lambda: _sample(sampler=ProbabilityFlowSampler("euler", ts=[2.0, 0.5])),
        ValueError,
        "ts",
    ),
    Case(
        "pc-predictor", lambda: PredictorCorrectorSampler("rd", LangevinCorrector()), TypeError, "predictor"
    ),
    Case(
        "pc-corrector",
        lambda: PredictorCorrectorSampler(ReverseDiffusion(), "langevin"),
        TypeError,
        "corrector",
    ),
    Case(
        "pc-steps-zero",
        lambda: PredictorCorrectorSampler(EulerMaruyama(), LangevinCorrector(), steps=0),
        ValueError,
        "steps",
    ),
    Case("langevin-snr-zero", lambda: LangevinCorrector(snr=0.0), ValueError, "snr"),
    Case("langevin-snr-nan", lambda: LangevinCorrector(snr=math.nan), ValueError, "snr"),
    Case("langevin-n-steps-zero", lambda: LangevinCorrector(n_steps=0), ValueError, "n_steps"),
    Case(
        "ancestral-flag", lambda: AncestralSampling(posterior_variance="yes"), TypeError, "posterior_variance"
    ),
    Case("ddpm-steps-zero", lambda: DDPMSampler(steps=0), ValueError, "steps"),
    Case("als-steps-zero", lambda: AnnealedLangevinSampler(steps=0), ValueError, "steps"),
    Case("als-each-zero", lambda: AnnealedLangevinSampler(n_steps_each=0), ValueError, "n_steps_each"),
    Case("als-snr-negative", lambda: AnnealedLangevinSampler(snr=-0.1), ValueError, "snr"),
    # -- log_likelihood ----------------------------------------------------------------------------
    Case("ll-x-list", lambda: _ll(x=[[0.0, 1.0]]), TypeError, "x must be a torch.Tensor"),
    Case(
        "ll-x-int", lambda: _ll(x=torch.ones(4, 2, dtype=torch.long)), TypeError, "x must be a floating-point"
    ),
    Case("ll-x-1d", lambda: _ll(x=torch.zeros(4)), ValueError, "x must have shape [B, ...]"),
    Case("ll-x-scalar", lambda: _ll(x=torch.tensor(0.5)), ValueError, "x must have shape [B, ...]"),
    Case("ll-x-empty", lambda: _ll(x=torch.zeros(0, 2)), ValueError, "x must hold at least one sample"),
    Case("ll-x-float16", lambda: _ll(x=X.half()), TypeError, "x has dtype torch.float16"),
    Case("ll-x-bfloat16", lambda: _ll(x=X.bfloat16()), TypeError, "x has dtype torch.bfloat16"),
    Case("ll-x-nan", lambda: _ll(x=torch.tensor([[math.nan, 0.0]])), ValueError, "x contains 1 NaN"),
    Case(
        "ll-x-inf", lambda: _ll(x=torch.tensor([[math.inf, 0.0]])), ValueError, "x contains 1 NaN or infinite"
    ),
    Case(
        "ll-sde-wrong", lambda: sdegen.log_likelihood(X, "vp", SCORE), TypeError, "sde must be an sdegen.SDE"
    ),
    Case("ll-score-not-callable", lambda: _ll(score_fn=None), TypeError, "score_fn"),
    Case("ll-divergence-wrong", lambda: _ll(divergence="exact"), TypeError, "divergence"),
    Case("ll-method-fixed", lambda: _ll(method="rk4"), ValueError, "method"),
    Case("ll-rtol-zero", lambda: _ll(rtol=0.0), ValueError, "rtol"),
    Case("ll-atol-negative", lambda: _ll(atol=-1.0), ValueError, "atol"),
    Case("ll-atol-string", lambda: _ll(atol="1e-5"), TypeError, "atol"),
    Case("ll-eps-zero", lambda: _ll(eps=0.0), ValueError, "eps"),
    Case("ll-eps-above-T", lambda: _ll(eps=1.5), ValueError, "eps"),
    Case("ll-eps-nan", lambda: _ll(eps=math.nan), ValueError, "eps"),
    Case("ll-prior-not-callable", lambda: _ll(prior_logp=0.0), TypeError, "prior_logp"),
    Case(
        "ll-prior-wrong-shape",
        lambda: _ll(prior_logp=lambda z: z, divergence=ExactTrace(), rtol=1e-2, atol=1e-2),
        ValueError,
        "prior_logp(z) must return a tensor of shape [B]",
    ),
    Case("ll-generator-wrong", lambda: _ll(generator=1), TypeError, "generator"),
    Case("ll-bpd-wrong-type", lambda: _ll(bits_per_dim=8), TypeError, "bits_per_dim"),
    Case(
        "ll-bpd-out-of-range",
        lambda: _ll(x=torch.rand(4, 2) * 255, bits_per_dim=Quantization()),
        ValueError,
        "bits_per_dim.data_range",
    ),
    Case("ll-max-steps-zero", lambda: _ll(max_steps=0), ValueError, "max_steps"),
    Case("ll-adjoint-not-bool", lambda: _ll(adjoint="yes"), TypeError, "adjoint"),
    Case("ll-adjoint-without-graph", lambda: _ll(adjoint=True), ValueError, "adjoint=True"),
    Case("ll-adjoint-not-module", lambda: _ll(adjoint=True, create_graph=True), TypeError, "adjoint=True"),
    Case("ll-create-graph-not-bool", lambda: _ll(create_graph=1), TypeError, "create_graph"),
    Case("ll-inference-mode", inference_mode_ll, RuntimeError, "inference_mode"),
    Case(
        "ll-model-shape",
        lambda: _ll(x=torch.zeros(4, 3), score_fn=MODEL),
        ValueError,
        "network takes samples of shape (2,)",
    ),
    Case("ll-model-dtype", lambda: _ll(x=X.double(), score_fn=MODEL), TypeError, "x has dtype torch.float64"),
    Case(
        "ll-score-wrong-shape",
        lambda: _ll(score_fn=lambda t, x: x[:, :1], divergence=ExactTrace()),
        ValueError,
        "score_fn",
    ),
    Case(
        "ll-score-detached",
        lambda: _ll(score_fn=lambda t, x: x.detach(), divergence=ExactTrace()),
        ValueError,
        "score_fn",
    ),
    Case(
        "ll-underflow",
        lambda: _ll(score_fn=lambda t, x: 1e30 * x, x=X.double(), divergence=ExactTrace()),
        sdegen.SolverError,
        "underflow in dt",
    ),
    # -- divergence estimators, bits/dim -----------------------------------------------------------
    Case("hutchinson-probe", lambda: Hutchinson("normal"), ValueError, "probe"),
    Case("hutchinson-n-probes-zero", lambda: Hutchinson(n_probes=0), ValueError, "n_probes"),
    Case("exact-trace-max-dim", lambda: ExactTrace(max_dim=0), ValueError, "max_dim"),
    Case(
        "exact-trace-too-big",
        lambda: _ll(
            x=torch.zeros(2, 200, dtype=torch.float64), score_fn=lambda t, x: -x, divergence=ExactTrace()
        ),
        ValueError,
        "ExactTrace",
    ),
    Case("quantization-range-order", lambda: Quantization(data_range=(1.0, 0.0)), ValueError, "data_range"),
    Case("quantization-range-single", lambda: Quantization(data_range=1.0), TypeError, "data_range"),
    Case("quantization-bits-zero", lambda: Quantization(n_bits=0), ValueError, "n_bits"),
    Case("quantization-bits-many", lambda: Quantization(n_bits=30), ValueError, "n_bits"),
    Case("bpd-logp-list", lambda: bits_per_dim([0.0], (1, 2)), TypeError, "logp"),
    Case("bpd-shape-batch", lambda: bits_per_dim(torch.zeros(3), (4, 2)), ValueError, "x_shape_or_dims"),
    Case("bpd-dims-string", lambda: bits_per_dim(torch.zeros(3), "3x2"), TypeError, "x_shape_or_dims"),
    Case("dequantize-off-grid", lambda: dequantize(torch.rand(4, 2)), ValueError, "x is not 8-bit data"),
    Case("dequantize-nan", lambda: dequantize(torch.tensor([math.nan])), ValueError, "x contains NaN"),
    Case(
        "dequantize-bool", lambda: dequantize(torch.ones(2, dtype=torch.bool)), TypeError, "x must be a real"
    ),
    # -- losses ------------------------------------------------------------------------------------
    Case(
        "dsm-eps-zero",
        lambda: DenoisingScoreMatching(eps=0.0)(MODEL, X),
        ValueError,
        "eps must lie in (0, T)",
    ),
    Case("dsm-eps-nan", lambda: DenoisingScoreMatching(eps=math.nan)(MODEL, X), ValueError, "eps"),
    Case(
        "ssm-eps-above-T",
        lambda: SlicedScoreMatching(eps=2.0)(MODEL, X),
        ValueError,
        "eps must lie in (0, T)",
    ),
    Case("dsm-weighting", lambda: DenoisingScoreMatching("sigma2"), TypeError, "weighting"),
    Case("dsm-reduction", lambda: DenoisingScoreMatching(reduction="avg"), ValueError, "reduction"),
    Case("ssm-projection", lambda: SlicedScoreMatching(projection="normal"), ValueError, "projection"),
    Case("ssm-n-projections", lambda: SlicedScoreMatching(n_projections=0), ValueError, "n_projections"),
    Case("ddpm-loss-steps", lambda: DDPMLoss(steps=0), ValueError, "steps"),
    Case("likelihood-weighting-table", lambda: LikelihoodWeighting(table_size=1), ValueError, "table_size"),
    Case(
        "loss-model-wrong",
        lambda: DenoisingScoreMatching()(MODEL.net, X),
        TypeError,
        "model must be a ScoreModel",
    ),
    Case("loss-x0-list", lambda: DenoisingScoreMatching()(MODEL, [[0.0, 0.0]]), TypeError, "x0"),
    Case(
        "loss-x0-int",
        lambda: DenoisingScoreMatching()(MODEL, torch.ones(4, 2, dtype=torch.long)),
        TypeError,
        "x0",
    ),
    Case(
        "loss-x0-empty",
        lambda: DenoisingScoreMatching()(MODEL, torch.zeros(0, 2)),
        ValueError,
        "x0 must hold at least one sample",
    ),
    Case(
        "loss-x0-shape",
        lambda: DenoisingScoreMatching()(MODEL, torch.zeros(4, 3)),
        ValueError,
        "x0 has samples of shape (3,)",
    ),
    Case(
        "loss-x0-dtype",
        lambda: DenoisingScoreMatching()(MODEL, X.double()),
        TypeError,
        "x0 has dtype torch.float64",
    ),
    Case(
        "ssm-x0-shape",
        lambda: SlicedScoreMatching()(MODEL, torch.zeros(4, 5)),
        ValueError,
        "x0 has samples of shape (5,)",
    ),
    Case("esm-target", lambda: ExplicitScoreMatching("oracle"), TypeError, "target_score"),
    Case(
        "esm-target-shape",
        lambda: ExplicitScoreMatching(lambda t, x: x[:, :1])(MODEL, X),
        ValueError,
        "target_score(t, x) must return a tensor shaped and typed like x",
    ),
    Case("ism-divergence", lambda: ImplicitScoreMatching(divergence="exact"), TypeError, "divergence"),
    Case(
        "ism-exact-above-max-dim",
        lambda: ImplicitScoreMatching()(
            ScoreModel(ScoreMLP(200, hidden=4, depth=1), VP, NoisePrediction()), torch.zeros(2, 200)
        ),
        ValueError,
        "max_dim",
    ),
    Case("ncsn-levels", lambda: NCSNLoss(levels=1), ValueError, "levels"),
    Case("ncsn-levels-float", lambda: NCSNLevels(2.5), TypeError, "levels"),
    Case("ncsn-on-vp", lambda: NCSNLoss()(MODEL, X), TypeError, "VESDE"),
    Case(
        "ddpm-loss-on-ve",
        lambda: DDPMLoss(steps=10)(ScoreModel(ScoreMLP(2, hidden=4, depth=1), sdegen.VESDE()), X),
        TypeError,
        "VPSDE",
    ),
    Case(
        "unet-channels",
        lambda: DenoisingScoreMatching()(ScoreModel(UNet.from_size("tiny", 1), VP), torch.zeros(2, 3, 8, 8)),
        ValueError,
        "[B, 1, H, W]",
    ),
    # -- networks and the score model ---------------------------------------------------------------
    Case("score-model-net", lambda: ScoreModel("mlp", VP), TypeError, "net"),
    Case("score-model-sde", lambda: ScoreModel(ScoreMLP(2), "vp"), TypeError, "sde"),
    Case("score-model-param", lambda: ScoreModel(ScoreMLP(2), VP, "noise"), TypeError, "parameterization"),
    Case("mlp-depth-zero", lambda: ScoreMLP(2, depth=0), ValueError, "depth"),
    Case("mlp-hidden-zero", lambda: ScoreMLP(2, hidden=0), ValueError, "hidden"),
    Case("unet-size", lambda: UNet.from_size("huge", 1), ValueError, "size"),
    # -- training settings -------------------------------------------------------------------------
    Case("config-steps-zero", lambda: TrainConfig(steps=0), ValueError, "steps"),
    Case("config-steps-float", lambda: TrainConfig(steps=10.0), TypeError, "steps"),
    Case("config-lr-zero", lambda: TrainConfig(lr=0.0), ValueError, "lr"),
    Case("config-lr-nan", lambda: TrainConfig(lr=math.nan), ValueError, "lr"),
    Case("config-lr-bool", lambda: TrainConfig(lr=True), ValueError, "lr"),
    Case("config-grad-clip", lambda: TrainConfig(grad_clip=0.0), ValueError, "grad_clip"),
    Case("config-ema-one", lambda: TrainConfig(ema_decay=1.0), ValueError, "ema_decay"),
    Case("config-ema-negative", lambda: TrainConfig(ema_decay=-0.5), ValueError, "ema_decay"),
    Case("config-ema-rampup", lambda: TrainConfig(ema_rampup=-1.0), ValueError, "ema_rampup"),
    Case("config-weight-decay", lambda: TrainConfig(weight_decay=math.nan), ValueError, "weight_decay"),
    Case("config-betas-one", lambda: TrainConfig(betas=(0.9,)), ValueError, "betas"),
    Case("config-betas-range", lambda: TrainConfig(betas=(0.9, 1.5)), ValueError, "betas"),
    Case("config-betas-number", lambda: TrainConfig(betas=0.9), ValueError, "betas"),
    Case("config-warmup", lambda: TrainConfig(warmup_steps=-1), ValueError, "warmup_steps"),
    Case("config-checkpoint-every", lambda: TrainConfig(checkpoint_every=-5), ValueError, "checkpoint_every"),
    Case("config-seed", lambda: TrainConfig(seed=-1), ValueError, "seed"),
    Case("config-log-every", lambda: TrainConfig(log_every=0), ValueError, "log_every"),
    Case("config-progress", lambda: TrainConfig(progress="no"), TypeError, "progress"),
    Case("config-unknown-field", lambda: TrainConfig.from_dict({"stepz": 3}), TypeError, "stepz"),
    Case("config-not-dict", lambda: TrainConfig.from_dict([("steps", 3)]), TypeError, "from_dict"),
    # -- the trainer -------------------------------------------------------------------------------
    Case("trainer-model", lambda: _trainer(model=MODEL.net), TypeError, "model must be a ScoreModel"),
    Case("trainer-loss", lambda: _trainer(loss="dsm"), TypeError, "loss"),
    Case("trainer-data", lambda: _trainer(data=RING), TypeError, "data must be a BatchSource"),
    Case(
        "trainer-config",
        lambda: Trainer(MODEL, DenoisingScoreMatching(), D.DistributionBatches(RING, 8), {"steps": 3}),
        TypeError,
        "config",
    ),
    Case("trainer-callbacks", lambda: _trainer(callbacks=[print]), TypeError, "callbacks"),
    Case("trainer-if-exists", lambda: _trainer(run_dir="x", if_exists="replace"), ValueError, "if_exists"),
    Case("trainer-run-dir-type", lambda: _trainer(run_dir=3), TypeError, "run_dir"),
    Case("trainer-metadata", lambda: _trainer(metadata={"sde": VP}), TypeError, "metadata"),
    Case("trainer-device", lambda: _trainer(device="gpu0"), ValueError, "device"),
    Case(
        "trainer-data-shape",
        lambda: _trainer(data=D.DatasetBatches(torch.zeros(16, 3), 4)),
        ValueError,
        "data has samples of shape (3,)",
    ),
    Case(
        "trainer-save-no-path",
        lambda: _trainer().save_checkpoint(),
        ValueError,
        "save_checkpoint needs a path",
    ),
    Case(
        "trainer-load-no-path",
        lambda: _trainer().load_checkpoint(),
        ValueError,
        "load_checkpoint needs a path",
    ),
    Case("trainer-fit-steps-float", lambda: _trainer().fit(2.5), TypeError, "steps"),
    Case("held-out-loss-x", lambda: HeldOutLoss([1.0, 2.0], every=1), TypeError, "x"),
    Case("held-out-loss-every", lambda: HeldOutLoss(X, every=0), ValueError, "every"),
    Case("held-out-nll-batch", lambda: HeldOutNLL(X, every=1, batch_size=0), ValueError, "batch_size"),
    # -- data --------------------------------------------------------------------------------------
    Case("batches-distribution", lambda: D.DistributionBatches(X, 8), TypeError, "distribution"),
    Case("batches-size-zero", lambda: D.DistributionBatches(RING, 0), ValueError, "batch_size"),
    Case(
        "dataset-batches-int",
        lambda: D.DatasetBatches(torch.zeros(8, 2, dtype=torch.long), 4),
        TypeError,
        "data",
    ),
    Case(
        "image-data-shape", lambda: D.ImageData(torch.zeros(4, 8, 8, dtype=torch.uint8)), ValueError, "pixels"
    ),
    Case("image-data-float", lambda: D.ImageData(torch.zeros(4, 1, 8, 8)), TypeError, "pixels"),
    Case("load-digits-split", lambda: D.load_digits("val"), ValueError, "split"),
    Case(
        "image-folder-missing",
        lambda: D.load_image_folder("/nonexistent/images"),
        FileNotFoundError,
        "/nonexistent/images",
    ),
    Case("image-folder-channels", lambda: D.load_image_folder("/tmp", channels=2), ValueError, "channels"),
    Case("split-fraction", lambda: D.load_digits("all").split(1.5), ValueError, "fraction"),
    # -- the oracle and metrics --------------------------------------------------------------------
    Case("mixture-weights", lambda: GaussianMixture([0.5, 0.6], [[0.0], [1.0]], 1.0), ValueError, "weights"),
    Case("mixture-means-shape", lambda: GaussianMixture([1.0], [0.0, 1.0], 1.0), ValueError, "means"),
    Case(
        "energy-distance-dims",
        lambda: sdegen.metrics.energy_distance(torch.zeros(4, 2), torch.zeros(4, 3)),
        ValueError,
        "x",
    ),
    Case("mmd-bandwidth", lambda: sdegen.metrics.mmd(X, X, bandwidth=-1.0), ValueError, "bandwidth"),
    Case("brownian-interval", lambda: sdegen.SequentialBrownian(1.0, 0.0, (4, 2)), ValueError, "t1"),
]


class _NonLinear(sdegen.SDE):
    """A drift that is not linear in x: no Gaussian kernel, so no Tweedie denoising."""

    T = 1.0

    def drift(self, t, x):
        return -(x**3)

    def diffusion(self, t):
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_logp(self, z):
        return -0.5 * z.flatten(1).square().sum(1)


@pytest.mark.parametrize("case", [c for c in API if c.error is not None], ids=lambda c: c.id)
def test_api_bad_input_is_refused_with_a_clear_error(case):
    with pytest.raises(case.error) as info:
        case.call()
    assert case.names in str(info.value), f"{case.id}: {type(info.value).__name__}: {info.value}"


def test_case_ids_are_distinct():
    ids = [c.id for c in API] + [c[0] for c in CLI]
    assert len(ids) == len(set(ids)) and len(ids) >= 150, len(ids)


# -- the command line ----------------------------------------------------------------------------------
CLI = [
    ("train-steps-zero", ["train", "--steps", "0"], "argument --steps: expected a positive integer"),
    ("train-steps-float", ["train", "--steps", "1.5"], "argument --steps"),
    ("train-batch-zero", ["train", "--batch-size", "0"], "argument --batch-size"),
    ("train-lr-negative", ["train", "--lr", "-1"], "argument --lr: expected a positive number"),
    ("train-lr-nan", ["train", "--lr", "nan"], "argument --lr"),
    ("train-lr-inf", ["train", "--lr", "inf"], "argument --lr"),
    ("train-hidden-zero", ["train", "--hidden", "0"], "argument --hidden"),
    ("train-depth-string", ["train", "--depth", "deep"], "argument --depth"),
    ("train-eps-zero", ["train", "--eps", "0"], "argument --eps"),
    ("train-warmup-negative", ["train", "--warmup", "-1"], "argument --warmup"),
    ("train-grad-clip", ["train", "--grad-clip", "0"], "argument --grad-clip"),
    ("train-ema-decay", ["train", "--ema-decay", "1"], "ema_decay"),
    ("train-ema-rampup", ["train", "--ema-rampup", "-1"], "ema_rampup"),
    ("train-weight-decay", ["train", "--weight-decay", "-0.1"], "weight_decay"),
    ("train-beta-order", ["train", "--beta-min", "5", "--beta-max", "1"], "beta_max"),
    ("train-sigma-order", ["train", "--sde", "ve", "--sigma-min", "5", "--sigma-max", "1"], "sigma_max"),
    ("train-seed-negative", ["train", "--seed", "-1"], "argument --seed"),
    ("train-threads", ["train", "--threads", "-2"], "argument --threads"),
    ("train-data-choice", ["train", "--data", "imagenet"], "argument --data: invalid choice"),
    ("train-sde-choice", ["train", "--sde", "cld"], "argument --sde: invalid choice"),
    ("train-loss-choice", ["train", "--loss", "mse"], "argument --loss: invalid choice"),
    ("train-model-choice", ["train", "--model", "resnet"], "argument --model: invalid choice"),
    (
        "train-param-choice",
        ["train", "--parameterization", "x0"],
        "argument --parameterization: invalid choice",
    ),
    ("train-channels-choice", ["train", "--channels", "2"], "argument --channels"),
    ("train-unet-on-2d", ["train", "--model", "unet-tiny"], "--model unet-tiny needs image data"),
    ("train-mnist-no-root", ["train", "--data", "mnist"], "--data mnist needs --data-root"),
    (
        "train-cifar-missing",
        ["train", "--data", "cifar10", "--data-root", "{tmp}/none"],
        "CIFAR-10 not found",
    ),
    ("train-folder-missing", ["train", "--data", "folder", "--data-root", "{tmp}/none"], "{tmp}/none"),
    ("train-batch-too-big", ["train", "--data", "digits", "--batch-size", "5000"], "--batch-size 5000"),
    ("train-device", ["train", "--device", "gpu0"], "--device 'gpu0'"),
    ("train-device-tpu", ["train", "--device", "xla"], "--device"),
    ("train-unknown-option", ["train", "--learning-rate", "1"], "unrecognized arguments: --learning-rate"),
    ("train-resume-nothing", ["train", "--resume", "--out", "{tmp}/none"], "config.json' does not exist"),
    ("sample-no-run", ["sample"], "give a run directory RUN, or a brought model with --model SPEC"),
    ("sample-missing-run", ["sample", "{tmp}/none"], "config.json' does not exist"),
    (
        "sample-sampler-choice",
        ["sample", "{tmp}/none", "--sampler", "dpm"],
        "argument --sampler: invalid choice",
    ),
    ("sample-n-zero", ["sample", "{tmp}/none", "--n", "0"], "argument --n"),
    ("sample-steps-zero", ["sample", "{tmp}/none", "--steps", "0"], "argument --steps"),
    ("sample-snr-negative", ["sample", "{tmp}/none", "--snr", "-1"], "argument --snr"),
    ("sample-eps-zero", ["sample", "{tmp}/none", "--eps", "0"], "argument --eps"),
    ("nll-missing-run", ["nll", "{tmp}/none"], "config.json' does not exist"),
    ("nll-split-choice", ["nll", "{tmp}/none", "--split", "val"], "argument --split: invalid choice"),
    ("nll-divergence-choice", ["nll", "{tmp}/none", "--divergence", "skilling"], "argument --divergence"),
    ("nll-rtol-zero", ["nll", "{tmp}/none", "--rtol", "0"], "argument --rtol"),
    ("nll-atol-string", ["nll", "{tmp}/none", "--atol", "tight"], "argument --atol"),
    ("nll-repeats-zero", ["nll", "{tmp}/none", "--repeats", "0"], "argument --repeats"),
    ("nll-batch-zero", ["nll", "{tmp}/none", "--batch-size", "0"], "argument --batch-size"),
    ("demo-steps-zero", ["demo", "--steps", "0"], "argument --steps"),
    ("demo-grid-zero", ["demo", "--grid", "0"], "argument --grid"),
    ("no-command", [], "the following arguments are required: COMMAND"),
    ("unknown-command", ["fit"], "invalid choice: 'fit'"),
    ("config-missing-key", ["sample", "{run}"], "lacks the setting(s) ['sde']"),
    ("config-bad-json", ["nll", "{run}"], "is not valid JSON"),
    ("config-unknown-sde", ["sample", "{run}"], "unknown SDE 'cld'"),
    ("config-missing-sde-option", ["sample", "{run}"], "setting 'sde' lacks 'beta_max'"),
    ("config-bad-train", ["sample", "{run}"], "invalid settings in"),
]

# What config.json holds in the rows that read a damaged run directory (``{run}``).
GOOD_CONFIG = {
    "data": {"name": "ring"},
    "sde": {"name": "vp", "beta_min": 0.1, "beta_max": 20.0},
    "model": {"name": "mlp", "hidden": 8, "depth": 1},
    "parameterization": "noise",
    "loss": {"name": "dsm", "eps": 1e-5},
    "batch_size": 8,
    "train": {"steps": 2},
    "eval": {"every": 1, "n": 4},
    "seed": 0,
}
DAMAGED = {
    "config-missing-key": lambda c: {k: v for k, v in c.items() if k != "sde"},
    "config-bad-json": lambda c: "{not json",
    "config-unknown-sde": lambda c: {**c, "sde": {"name": "cld"}},
    "config-missing-sde-option": lambda c: {**c, "sde": {"name": "vp", "beta_min": 0.1}},
    "config-bad-train": lambda c: {**c, "train": {"steps": -3}},
}


@pytest.mark.parametrize("case_id, argv, text", CLI, ids=[c[0] for c in CLI])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case_id, argv, text):
    run = tmp_path / "run"
    if case_id in DAMAGED:
        run.mkdir()
        config = DAMAGED[case_id](GOOD_CONFIG)
        (run / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(run)) for a in argv]
    if argv[:1] == ["train"] and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if argv[:1] == ["demo"]:
        argv += ["--out", str(tmp_path / "demo")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert text.replace("{tmp}", str(tmp_path)) in err, err
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing was trained
