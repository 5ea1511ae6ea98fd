"""The public namespace: the main objects at the top level, a trained run loaded in one call, and
the names that moved still working (with a DeprecationWarning) for one release."""

from __future__ import annotations

import warnings

import pytest
import torch

import sdegen
from tests._runs import write_run


def test_top_level_holds_the_main_objects_and_every_name_resolves() -> None:
    for name in (
        "VPSDE",
        "sample",
        "log_likelihood",
        "ScoreModel",
        "DenoisingScoreMatching",
        "Trainer",
        "load_run",
    ):
        assert name in sdegen.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no name of __all__ is a deprecated one
        for name in sdegen.__all__:
            assert getattr(sdegen, name) is not None


@pytest.mark.parametrize("name", sorted(sdegen._MOVED))
def test_a_moved_name_still_works_for_one_release_with_a_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"sdegen\.{name} is deprecated.*sdegen 0\.3"):
        obj = getattr(sdegen, name)
    assert name not in sdegen.__all__
    if name != "expand_like":
        assert obj is getattr(sdegen.samplers, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchSampler'"):
        sdegen.NoSuchSampler  # noqa: B018


def test_load_run_rebuilds_the_trained_model_from_its_directory(tmp_path) -> None:
    """The model that ``sdegen.load_run`` returns is the trained EMA network: its score equals the
    one of the run rebuilt by hand from the same settings and weights."""
    run_dir = write_run(tmp_path / "run", steps=4)
    run = sdegen.load_run(run_dir)
    assert isinstance(run.sde, sdegen.VPSDE) and isinstance(run.model, sdegen.ScoreModel)
    assert not run.model.training and run.config.data["name"] == "ring"
    from sdegen.run import build_run, read_config
    from sdegen.training import load_weights

    by_hand = build_run(read_config(run_dir), torch.device("cpu"))
    load_weights(by_hand.model, run_dir / sdegen.run.CHECKPOINT, ema=True)
    by_hand.model.eval()
    t, x = torch.full((8,), 0.3), torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(run.model(t, x), by_hand.model(t, x), rtol=0, atol=0)
        out = sdegen.sample(run.sde, run.model, (8, 2), sdegen.DDIMSampler(5))
    assert out.x.shape == (8, 2) and out.nfe == 5


def test_load_run_of_a_directory_without_a_run_says_so(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="run directory made by `sdegen train`"):
        sdegen.load_run(tmp_path)


def test_a_run_setting_error_is_a_value_error_and_a_cli_usage_error(tmp_path, capsys) -> None:
    from sdegen.cli import main
    from sdegen.run import SettingsError
    from sdegen.run.registry import SDES, lookup

    with pytest.raises(SettingsError, match="unknown SDE 'nope'") as e:
        lookup(SDES, "nope", "SDE")
    assert isinstance(e.value, ValueError)
    assert main(["sample", str(tmp_path), "--n", "2"]) == 2  # not a run directory: exit status 2


def test_the_divergence_estimators_moved_to_a_module_the_losses_and_likelihood_share() -> None:
    import sdegen.divergence
    import sdegen.likelihood.divergence as old

    assert sdegen.likelihood.Hutchinson is sdegen.divergence.Hutchinson is sdegen.Hutchinson
    with pytest.warns(DeprecationWarning, match=r"sdegen\.likelihood\.divergence\.ExactTrace is deprecated"):
        assert old.ExactTrace is sdegen.divergence.ExactTrace
    with pytest.raises(AttributeError):
        old.NoSuchEstimator  # noqa: B018


#: Every old path of a classifier piece: (module, name). Each still works, with a warning, until 0.3.
_CLASSIFIER_MOVES = [
    ("sdegen.losses", "NoisyClassifierLoss"),
    ("sdegen.losses.classifier", "NoisyClassifierLoss"),
    ("sdegen.training", "HeldOutAccuracy"),
    ("sdegen.training.callbacks", "HeldOutAccuracy"),
]


@pytest.mark.parametrize(("module", "name"), _CLASSIFIER_MOVES, ids=lambda v: v)
def test_a_classifier_piece_moved_to_sdegen_classifier_warns_from_its_old_path(
    module: str, name: str
) -> None:
    import importlib

    import sdegen.classifier

    old = importlib.import_module(module)
    assert name not in getattr(old, "__all__", ())
    with pytest.warns(
        DeprecationWarning, match=rf"{module}\.{name} is deprecated.*sdegen 0\.3.*sdegen\.classifier"
    ):
        obj = getattr(old, name)
    assert obj is getattr(sdegen.classifier, name)
    with pytest.warns(DeprecationWarning):  # the from-import goes through the same module __getattr__
        exec(f"from {module} import {name}", {})
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        old.NoSuchName  # noqa: B018


def test_the_classifier_namespace_holds_every_classifier_piece_without_a_warning() -> None:
    """``sdegen.classifier`` is the one home a newcomer looks in: the pieces defined elsewhere (the
    networks beside the score networks, the guidance and its protocol among the compositions of
    scores) are the same objects there, and importing them warns of nothing."""
    import sdegen.classifier as C
    import sdegen.composition
    import sdegen.nn

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in C.__all__:
            assert getattr(C, name) is not None
    assert C.ClassifierGuidance is sdegen.composition.ClassifierGuidance
    assert C.NoiseConditionalClassifier is sdegen.composition.NoiseConditionalClassifier
    assert C.MLPClassifier is sdegen.nn.MLPClassifier and C.UNetClassifier is sdegen.nn.UNetClassifier
    assert C.NoisyClassifierLoss.model_type is C.NoisyClassifier
    assert "classifier" in sdegen.__all__ and sdegen.classifier is C
