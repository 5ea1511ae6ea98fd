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
from sdegen.classifier import NoisyClassifier
from sdegen.cli import main
from sdegen.composition import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    ProductOfExperts,
    ReconstructionGuidance,
)
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
from sdegen.observations import Inpainting
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.samplers import (
    AncestralSampling,
    AnnealedLangevinSampler,
    DDIMSampler,
    DDPMSampler,
    EDMHeunSampler,
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
        lambda: _sample(
            sampler=ProbabilityFlowSampler("euler", steps=2),
            sde=_NonLinear(),
            score_fn=lambda t, x: -x,  # a score that does not name its SDE
            denoise=True,
        ),
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


# -- round three: causes of silently wrong answers and cryptic errors (issue 20, causes 1-7) ------------
# Fresh inputs of each class, not the examples. Every row is refused before any sampling,
# solving or training step.
VE = sdegen.VESDE()
LABELLED = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], 0.5, labels=[0, 1])
OBS = Inpainting(torch.tensor([True, False]), torch.tensor([1.0, 0.0]), noise_std=0.1)
_W = torch.nn.Parameter(torch.ones(()))  # a weight: the detached scores below still require grad


def _detached(t, x):
    return -x.detach() * _W  # depends on a weight, not on x: no gradient path to x


def _no_grad_score(t, x):
    with torch.no_grad():
        return -x


def _numpy_score(t, x):
    return -torch.from_numpy(x.detach().numpy().copy())


class _UnclippedCosine(sdegen.LinearSDE):
    """Nichol and Dhariwal's cosine schedule without the clip: alpha(T) = 6e-17, a(T) = -3e16."""

    def alpha(self, t):
        return torch.cos((t + 0.008) / 1.008 * math.pi / 2) / math.cos(0.008 / 1.008 * math.pi / 2)

    def sigma(self, t):
        return (1 - self.alpha(t) ** 2).clamp_min(0).sqrt()


class _EndSpike(sdegen.LinearSDE):
    """VE with sigma^2 = t / (1 + 1e-10 - t): finite on [0, 1], but g^2 = d sigma^2/dt blows up at T."""

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        return self.sigma_squared(t).sqrt()

    def sigma_squared(self, t):
        return t / (1.0 + 1e-10 - t)


class _Dip(sdegen.LinearSDE):
    """VE with a narrow dip of sigma^2 near t = 0.5032, between the points a 129-point check sees:
    g^2 = d sigma^2 / dt < 0 there."""

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma_squared(self, t):
        return t - 2e-3 * torch.exp(-(((t - 0.5039) / 1e-3) ** 2))

    def sigma(self, t):
        return self.sigma_squared(t).clamp_min(0).sqrt()


def _schedule(alpha, sigma=lambda t: t):
    """A user LinearSDE with the given alpha(t) and sigma(t)."""
    return type(
        "UserSDE", (sdegen.LinearSDE,), {"alpha": lambda self, t: alpha(t), "sigma": lambda self, t: sigma(t)}
    )()


def _poe(*experts, **kw):
    return _sample(score_fn=ProductOfExperts(list(experts), **kw), sampler=ReverseSDESampler(steps=2))


def _cg(score=None, classifier=None, **kw):
    guided = ClassifierGuidance(score or LABELLED.score(VP), classifier or LABELLED.classifier(VP), 1, **kw)
    return _sample(score_fn=guided, sampler=ReverseSDESampler(steps=2))


SILENT = [
    # -- 1. an object built for one SDE, used with another -------------------------------------------
    Case(
        "sde-model-vp-sampled-ve",
        lambda: _sample(sde=VE, score_fn=MODEL),
        ValueError,
        "score_fn was built for VPSDE",
    ),
    Case(
        "sde-oracle-vp-sampled-subvp",
        lambda: _sample(sde=sdegen.SubVPSDE(), score_fn=SCORE),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-oracle-beta-max",
        lambda: _sample(sde=sdegen.VPSDE(beta_max=10.0), score_fn=SCORE),
        ValueError,
        "beta_max=10",
    ),
    Case(
        "sde-oracle-vp-sampled-cosine",
        lambda: _sample(sde=sdegen.CosineVPSDE(), score_fn=SCORE),
        ValueError,
        "score_fn was built for",
    ),
    Case("sde-oracle-T", lambda: _sample(sde=sdegen.VPSDE(T=2.0), score_fn=SCORE), ValueError, "T=2"),
    Case("sde-likelihood", lambda: sdegen.log_likelihood(X, VE, SCORE), ValueError, "score_fn was built for"),
    Case("sde-reverse-object", lambda: VE.reverse(SCORE), ValueError, "score_fn was built for"),
    Case(
        "sde-probability-flow-object",
        lambda: VE.probability_flow(SCORE),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-esm-target",
        lambda: ExplicitScoreMatching(MIX.score(VE))(MODEL, X),
        ValueError,
        "target_score was built for",
    ),
    Case(
        "sde-recon-parts",
        lambda: ReconstructionGuidance(MIX.score(VE), VP, OBS),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-recon-sampled",
        lambda: _sample(sde=VE, score_fn=ReconstructionGuidance(SCORE, VP, OBS)),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-guidance-parts",
        lambda: ClassifierGuidance(LABELLED.score(VP), LABELLED.classifier(VE), 1),
        ValueError,
        "classifier was built for",
    ),
    Case(
        "sde-guidance-sampled",
        lambda: _sample(sde=VE, score_fn=ClassifierGuidance(LABELLED.score(VP), LABELLED.classifier(VP), 1)),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-cfg-sampled",
        lambda: _sample(sde=VE, score_fn=ClassifierFreeGuidance(LABELLED.conditional_score(VP), 1, 2.0)),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-poe-parts",
        lambda: ProductOfExperts([SCORE, MIX.score(VE)]),
        ValueError,
        "scores[1] was built for",
    ),
    Case(
        "sde-poe-sampled",
        lambda: _sample(sde=VE, score_fn=ProductOfExperts([SCORE, SCORE])),
        ValueError,
        "score_fn was built for",
    ),
    Case(
        "sde-given-sampled",
        lambda: _sample(
            sde=VE, score_fn=ScoreModel(ScoreMLP(2, hidden=4, depth=1, n_classes=2), VP).given(1)
        ),
        ValueError,
        "score_fn was built for",
    ),
    # -- 2. a score without a gradient path to x where one is differentiated ---------------------------
    Case(
        "grad-ll-detached-weights",
        lambda: sdegen.log_likelihood(X, VP, _detached),
        ValueError,
        "score_fn's output has no gradient path to x",
    ),
    Case(
        "grad-ll-exact-no-grad",
        lambda: sdegen.log_likelihood(X, VP, _no_grad_score, divergence=ExactTrace()),
        ValueError,
        "score_fn's output has no gradient path",
    ),
    Case(
        "grad-ll-numpy",
        lambda: sdegen.log_likelihood(X, VP, _numpy_score),
        ValueError,
        "no gradient path to x",
    ),
    Case(
        "grad-recon-detached",
        lambda: _sample(score_fn=ReconstructionGuidance(_detached, VP, OBS)),
        ValueError,
        "score_fn's output has no gradient path",
    ),
    Case(
        "grad-recon-no-grad",
        lambda: _sample(score_fn=ReconstructionGuidance(_no_grad_score, VP, OBS)),
        ValueError,
        "score_fn's output has no gradient path",
    ),
    Case(
        "grad-guidance-classifier-detached",
        lambda: _cg(classifier=_Logits(lambda t, x: (x.detach() * _W) @ torch.ones(2, 2))),
        ValueError,
        "classifier's log p_t(y | x) has no gradient path",
    ),
    # -- 3. every part of a composite checked like a top-level score ------------------------------------
    Case(
        "poe-expert-narrow",
        lambda: _poe(SCORE, lambda t, x: x[:, :1]),
        ValueError,
        "scores[1] must return a tensor shaped",
    ),
    Case(
        "poe-expert-list",
        lambda: _poe(SCORE, lambda t, x: x.tolist()),
        ValueError,
        "scores[1] must return a tensor shaped",
    ),
    Case(
        "poe-expert-float64",
        lambda: _poe(lambda t, x: -x.double(), SCORE),
        ValueError,
        "scores[0] must return a tensor shaped",
    ),
    Case("poe-expert-batch", lambda: _poe(SCORE, lambda t, x: -x[:1]), ValueError, "scores[1]"),
    Case(
        "poe-expert-not-callable",
        lambda: ProductOfExperts([SCORE, "gaussian"]),
        TypeError,
        "scores[1] must be callable",
    ),
    Case("poe-scores-one-function", lambda: ProductOfExperts(SCORE), TypeError, "scores must be a list"),
    Case("poe-weights-string", lambda: ProductOfExperts([SCORE, SCORE], "11"), TypeError, "weights"),
    Case(
        "poe-energy-shape",
        lambda: ProductOfExperts([SCORE], log_densities=[lambda t, x: x]).log_density(torch.ones(4), X),
        ValueError,
        "log_densities[0] must return a tensor [B]",
    ),
    Case(
        "cg-score-shape",
        lambda: _cg(score=lambda t, x: x[:, :1]),
        ValueError,
        "score_fn must return a tensor shaped",
    ),
    Case(
        "cg-classifier-list",
        lambda: _cg(classifier=_Logits(lambda t, x: [[0.0, 0.0]] * 4)),
        ValueError,
        "classifier must return floating-point logits",
    ),
    Case(
        "cg-classifier-width",
        lambda: _cg(classifier=_Logits(lambda t, x: x.sum(1, keepdim=True))),
        ValueError,
        "classifier must return floating-point logits of shape [B, C] = [4, 2]",
    ),
    Case(
        "cfg-model-shape",
        lambda: _sample(score_fn=ClassifierFreeGuidance(_Conditional(lambda t, x, y: x[:, :1]), 0, 1.0)),
        ValueError,
        "model must return a tensor shaped",
    ),
    Case(
        "recon-score-shape",
        lambda: _sample(score_fn=ReconstructionGuidance(lambda t, x: x.sum(1), VP, OBS)),
        ValueError,
        "must return a tensor shaped and typed like x",
    ),
    # -- 4. one set of type rules: flags are bools, sizes are ints, schedules are real tensors ----------
    Case(
        "type-denoise-string",
        lambda: _sample(denoise="no"),
        TypeError,
        "denoise must be a bool (True or False)",
    ),
    Case("type-trajectory-string", lambda: _sample(return_trajectory="no"), TypeError, "return_trajectory"),
    Case("type-progress-int", lambda: _sample(progress=1), TypeError, "progress"),
    Case(
        "type-sampler-denoise-none",
        lambda: DDPMSampler(steps=2)(VP, SCORE, X, denoise=None),
        TypeError,
        "denoise",
    ),
    Case("type-shape-float", lambda: _sample(shape=(4.5, 2)), TypeError, "shape[0]=4.5"),
    Case("type-shape-integral-float", lambda: _sample(shape=(4, 2.0)), TypeError, "shape[1]=2.0"),
    Case("type-shape-bool", lambda: _sample(shape=(True, 2)), TypeError, "shape"),
    Case("type-prior-shape-float", lambda: VP.prior_sampling((2.5, 2)), TypeError, "shape"),
    Case("type-steps-float", lambda: DDIMSampler(steps=4.0), TypeError, "steps"),
    Case(
        "type-cfg-concatenate",
        lambda: ClassifierFreeGuidance(LABELLED.conditional_score(VP), 0, 1.0, concatenate="no"),
        TypeError,
        "concatenate",
    ),
    Case(
        "type-ssm-variance-reduced",
        lambda: SlicedScoreMatching(variance_reduced="yes"),
        TypeError,
        "variance_reduced",
    ),
    Case("type-reverse-adaptive", lambda: ReverseSDESampler(adaptive="no"), TypeError, "adaptive"),
    Case(
        "type-dataset-dequantize",
        lambda: D.DatasetBatches(D.load_digits("train"), 8, dequantize="no"),
        TypeError,
        "dequantize",
    ),
    Case(
        "type-dataset-seed", lambda: D.DatasetBatches(D.load_digits("train"), 8, seed=1.5), TypeError, "seed"
    ),
    Case(
        "type-alpha-integer",
        lambda: _sample(
            sde=_schedule(lambda t: torch.ones_like(t, dtype=torch.long)), score_fn=lambda t, x: -x
        ),
        TypeError,
        "alpha(t) must return a real floating-point tensor",
    ),
    Case(
        "type-alpha-float",
        lambda: _sample(sde=_schedule(lambda t: 1.0), score_fn=lambda t, x: -x),
        TypeError,
        "alpha(t) must return a tensor",
    ),
    Case(
        "type-sigma-complex",
        lambda: _sample(
            sde=_schedule(lambda t: torch.exp(-t), lambda t: t.to(torch.complex128)), score_fn=lambda t, x: -x
        ),
        TypeError,
        "sigma(t) must return a real",
    ),
    Case(
        "type-sigma-numpy",
        lambda: _sample(sde=_schedule(torch.ones_like, lambda t: t.numpy()), score_fn=lambda t, x: -x),
        TypeError,
        "sigma(t) must return a tensor",
    ),
    Case(
        "type-alpha-scalar",
        lambda: _sample(
            sde=_schedule(lambda t: torch.tensor(1.0, dtype=torch.float64)), score_fn=lambda t, x: -x
        ),
        ValueError,
        "alpha(t) must be elementwise in t",
    ),
    Case(
        "type-given-float-label",
        lambda: ScoreModel(ScoreMLP(2, hidden=4, depth=1, n_classes=2), VP).given(1.0),
        TypeError,
        "y must be",
    ),
    Case(
        "type-labels-sequence-bool",
        lambda: GaussianMixture([0.5, 0.5], [[0.0], [1.0]], 1.0, labels=[0, True]),
        TypeError,
        "labels",
    ),
    # -- 5. schedules singular at an end, or wrong between checked points ------------------------------
    Case(
        "schedule-cosine-reverse-sde",
        lambda: _sample(
            sde=_UnclippedCosine(), score_fn=lambda t, x: -x, sampler=ReverseSDESampler(steps=1000)
        ),
        ValueError,
        "singular schedule",
    ),
    Case(
        "schedule-cosine-ddpm",
        lambda: _sample(sde=_UnclippedCosine(), score_fn=lambda t, x: -x, sampler=DDPMSampler(steps=10)),
        ValueError,
        "a(t) = d log alpha/dt",
    ),
    Case(
        "schedule-cosine-likelihood",
        lambda: sdegen.log_likelihood(X, _UnclippedCosine(), lambda t, x: -x),
        ValueError,
        "singular schedule",
    ),
    Case(
        "schedule-cosine-loss",
        lambda: DenoisingScoreMatching()(ScoreModel(ScoreMLP(2, hidden=4, depth=1), _UnclippedCosine()), X),
        ValueError,
        "singular schedule",
    ),
    Case(
        "schedule-end-spike",
        lambda: _sample(
            sde=_EndSpike(), score_fn=lambda t, x: -x, sampler=ProbabilityFlowSampler("euler", steps=100)
        ),
        ValueError,
        "g(t)^2",
    ),
    Case(
        "schedule-dip-grid",
        lambda: _sample(
            sde=_Dip(), score_fn=lambda t, x: -x, sampler=DDPMSampler(grid=[1.0, 0.5032, 0.2, 0.01])
        ),
        ValueError,
        "g(t)^2",
    ),
    Case(
        "schedule-dip-flow",
        lambda: _Dip().probability_flow(lambda t, x: -x)(torch.tensor(0.5032), X),
        ValueError,
        "a time the solver evaluated",
    ),
    Case(
        "schedule-dip-reverse",
        lambda: _Dip().reverse(lambda t, x: -x).f(torch.tensor(1.0 - 0.5032), X),
        ValueError,
        "g(t)^2",
    ),
    # -- 7. the library's own message instead of torch's ------------------------------------------------
    Case(
        "cryptic-edm-huge-float32",
        lambda: _sample(sde=sdegen.EDMVESDE(1e30), score_fn=lambda t, x: -x, sampler=EDMHeunSampler(steps=4)),
        ValueError,
        "beyond the range of x_T's dtype torch.float32",
    ),
    Case(
        "cryptic-ve-huge-float32",
        lambda: _sample(sde=sdegen.VESDE(sigma_max=1e20), score_fn=lambda t, x: -x),
        ValueError,
        "beyond the range of x_T's dtype",
    ),
    Case(
        "cryptic-dtype-int",
        lambda: _sample(dtype=torch.int64),
        TypeError,
        "dtype must be a floating-point dtype",
    ),
    Case("cryptic-dtype-string", lambda: _sample(dtype="float32"), TypeError, "dtype must be a torch.dtype"),
    Case(
        "cryptic-device-name",
        lambda: _sample(device="gpu0"),
        ValueError,
        "device='gpu0' is not a torch device",
    ),
    Case(
        "cryptic-device-absent",
        lambda: _sample(device="cuda:7" if not torch.cuda.is_available() else "cuda:99"),
        ValueError,
        "device='cuda",
    ),
    Case(
        "cryptic-device-generator",
        lambda: _sample(device="meta", generator=torch.Generator()),
        ValueError,
        "generator is on cpu but device='meta'",
    ),
    Case(
        "cryptic-score-device",
        lambda: _sample(score_fn=lambda t, x: torch.zeros(x.shape, device="meta")),
        ValueError,
        "device cpu",
    ),
    Case("cryptic-seed-huge", lambda: TrainConfig(seed=2**70), ValueError, "seed must be < 2^63"),
    Case(
        "cryptic-labels-float",
        lambda: NoisyClassifier(_MLPClassifier2(), VP).log_prob(0.5, X, torch.zeros(4)),
        TypeError,
        "y must be integers: integer labels",
    ),
    Case(
        "cryptic-labels-range",
        lambda: ClassifierGuidance(LABELLED.score(VP), LABELLED.classifier(VP), torch.tensor([0, 1, 2, 0])),
        ValueError,
        "y must hold class labels in 0..1; got y[2]=2",
    ),
]


class _Logits:
    """A classifier with the logits ``fn(t, x)``, for two classes."""

    n_classes = 2

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, t, x):
        return self.fn(t, x)


class _Conditional:
    """A conditional score model ``fn(t, x, y)`` with two classes and the null label 2."""

    n_classes, null_label = 2, 2

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, t, x, y):
        return self.fn(t, x, y)


def _MLPClassifier2():
    from sdegen.nn import MLPClassifier

    return MLPClassifier(2, 2, hidden=4, depth=1)


API += SILENT


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
    # -- round three: an option that the choice made does not read (cause 6), numbers torch cannot take
    (
        "applies-sigma-max-on-vp",
        ["train", "--sigma-max", "5"],
        "--sigma-max is an option of --sde ve or edm; this run trains with --sde vp",
    ),
    (
        "applies-beta-on-ve",
        ["train", "--sde", "ve", "--beta-max", "5"],
        "--beta-max is an option of --sde vp or subvp",
    ),
    (
        "applies-cosine-s-on-edm",
        ["train", "--sde", "edm", "--cosine-s", "0.01"],
        "--cosine-s is an option of --sde cosine",
    ),
    (
        "applies-image-size-2d",
        ["train", "--image-size", "16"],
        "--image-size is an option of --data folder; this run trains with --data ring",
    ),
    (
        "applies-channels-digits",
        ["train", "--data", "digits", "--channels", "1"],
        "--channels is an option of --data folder",
    ),
    (
        "applies-download-2d",
        ["train", "--download"],
        "--download is an option of --data mnist, cifar10 or folder",
    ),
    (
        "applies-hidden-unet",
        ["train", "--data", "digits", "--hidden", "64"],
        "--hidden is an option of --model mlp; this run trains with --model unet-small",
    ),
    (
        "applies-depth-unet",
        ["train", "--model", "unet-tiny", "--data", "digits", "--depth", "2"],
        "--depth is an option of --model mlp",
    ),
    (
        "applies-levels-dsm",
        ["train", "--loss", "dsm-likelihood", "--ncsn-levels", "5"],
        "--ncsn-levels is an option of --loss ncsn",
    ),
    (
        "applies-snr-ddim",
        ["sample", "{tmp}/none", "--sampler", "ddim", "--snr", "0.2"],
        "--snr is an option of --sampler pc or annealed-langevin",
    ),
    (
        "applies-steps-ode",
        ["sample", "{tmp}/none", "--sampler", "ode", "--steps", "50"],
        "--steps 50 applies to fixed-step samplers",
    ),
    (
        "applies-n-steps-each-pc",
        ["sample", "{tmp}/none", "--sampler", "pc", "--n-steps-each", "3"],
        "--n-steps-each is an option of --sampler annealed-langevin",
    ),
    ("applies-split-2d", ["nll", "{run}", "--split", "train"], "--split is an option of --data digits"),
    (
        "cli-threads-huge",
        ["train", "--threads", "100000"],
        "argument --threads: expected a number of threads",
    ),
    (
        "cli-seed-huge",
        ["sample", "{tmp}/none", "--seed", "123456789012345678901234567890"],
        "argument --seed: expected an integer seed in [0, 2^63)",
    ),
    ("cli-seed-2-63", ["nll", "{tmp}/none", "--seed", str(2**63)], "argument --seed"),
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
    "applies-split-2d": lambda c: c,
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
