"""Every example runs, in its quick mode, and says what it should; a new example must be added here.

The examples run in this process (``runpy``) with their command-line arguments, which is much
cheaper than a fresh interpreter importing torch each time. ``examples/custom_sde/test_ou.py`` is a
test module of its own (collected from ``examples/``).
"""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# example -> (arguments, phrases its output must contain)
RUNS = {
    "quickstart.py": ([], ["drift at t=0.5", "score_0.5"]),
    "likelihood.py": (["--quick"], ["exact trace, exact log p_T", "bits/dim (offset 7)"]),
    "engines_directly.py": (["--quick"], ["torchsde euler, 100 steps", "matches p_eps"]),
    "digits.py": (["--quick", "--out", "{tmp}"], ["test bits/dim", "samples:"]),
    "custom_sde/ou.py": (["--quick"], ["ProbabilityFlowSampler", "log-likelihood with the SDE's own prior"]),
}


def test_every_example_is_run_here():
    scripts = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*.py")
        if not p.name.startswith("test_") and p.name != "conftest.py"
    }
    assert scripts == set(RUNS), "add the new example to RUNS"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs(name, tmp_path, monkeypatch, capsys):
    args, phrases = RUNS[name]
    path = EXAMPLES / name
    monkeypatch.setattr(sys, "argv", [str(path), *(a.replace("{tmp}", str(tmp_path)) for a in args)])
    monkeypatch.syspath_prepend(str(path.parent))  # custom_sde/ou.py imports nothing local, test_ou does
    monkeypatch.chdir(tmp_path)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        assert e.code in (0, None), f"{name} exited with {e.code}"
    out = capsys.readouterr().out
    for phrase in phrases:
        assert phrase in out, f"{name} did not print {phrase!r}:\n{out}"
