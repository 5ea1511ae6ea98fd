"""Run sdegen's command line on several processes with torchrun, for the multi-process tests.

Run as a worker, this file runs each command line of ``SDEGEN_TEST_COMMANDS`` (a JSON list of
argument lists, passed in the environment because torchrun would parse options after the script)
through ``sdegen.cli.main`` in order, in every process, printing ``command K exited with S`` after
each, and exits with the first non-zero status. With
``SDEGEN_TEST_KILL_RANK=r`` and ``SDEGEN_TEST_KILL_STEP=k`` in the environment, process r kills
itself (SIGKILL, as the OOM killer would) when its trainer is about to take step k + 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def launch(*commands: list[str], processes: int = 2, env: dict[str, str] | None = None, timeout: float = 120):
    """Run ``commands`` (argument lists of ``sdegen``) one after another on ``processes`` processes,
    started as torchrun starts them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
    store in the environment) but without its agent process, which would cost another second or
    two of start-up. Returns ``(statuses, outputs)``: each process's exit status and its stdout and
    stderr."""
    from torch.distributed import TCPStore

    # The rendezvous store, on a free port the operating system picks; the processes join it as
    # clients, as they join torchrun's agent store.
    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    common = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SDEGEN_TEST_COMMANDS": json.dumps([list(map(str, c)) for c in commands]),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(store.port),
        "TORCHELASTIC_USE_AGENT_STORE": "True",
        "WORLD_SIZE": str(processes),
        "LOCAL_WORLD_SIZE": str(processes),
        **(env or {}),
    }
    common.pop("SDEGEN_TRACEBACK", None)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__],
            env={**common, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(processes)
    ]
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        del store
    return [p.returncode for p in procs], [o + e for o, e in outputs]


def _main() -> int:
    rank = int(os.environ.get("RANK", "0"))
    if os.environ.get("SDEGEN_TEST_KILL_RANK") == str(rank):
        from sdegen.training import Trainer

        step, original = int(os.environ["SDEGEN_TEST_KILL_STEP"]), Trainer.train_step

        def train_step(self):
            if self.step == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self)

        Trainer.train_step = train_step
    import torch

    torch.set_num_threads(1)
    from sdegen.cli import main

    statuses = []
    for k, command in enumerate(json.loads(os.environ["SDEGEN_TEST_COMMANDS"])):
        statuses.append(main(command))
        print(f"command {k} exited with {statuses[-1]}", flush=True)
    return next((s for s in statuses if s), 0)


if __name__ == "__main__":
    sys.exit(_main())

__all__ = ["launch"]
