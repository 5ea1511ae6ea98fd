"""A trained run: its settings (``config.json``), its data, SDE, model and loss, rebuilt from a run
directory that ``sdegen train`` or :class:`~sdegen.training.Trainer` wrote.

``sdegen.load_run(path)`` is the one call a user needs::

    run = sdegen.load_run("runs/demo")           # the EMA weights, on the CPU, in eval mode
    out = sdegen.sample(run.sde, run.model, (1000, 2), sdegen.DPMSolverMultistepSampler(20))

The registry (:mod:`sdegen.run.registry`) maps the names a run's settings use (``"vp"``,
``"moons"``, ``"unet-small"``, ``"dsm"``, ...) to library objects; it is the only place where such
strings become objects, shared by the ``sdegen`` command and by :func:`load_run`.
"""

from sdegen.run.config import CHECKPOINT, CONFIG, Run, RunConfig, build_run, load_run, read_config
from sdegen.run.datasets import DataBundle
from sdegen.run.errors import SettingsError

__all__ = [
    "load_run",
    "Run",
    "RunConfig",
    "read_config",
    "build_run",
    "DataBundle",
    "SettingsError",
    "CONFIG",
    "CHECKPOINT",
]
