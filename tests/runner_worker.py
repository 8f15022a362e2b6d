"""A process that asks the real Runner for the artefact of a slow stage (tests/test_locks.py).

    python tests/runner_worker.py WORKSPACE KEY SECONDS [--fork-child]

The stage ``slow`` sleeps SECONDS, writes ``value.txt`` (the builder's pid) into its output
``<WORKSPACE>/slow/<KEY>/`` and appends a line to ``<WORKSPACE>/builds.log`` (outside the
output: one line per build). ``--fork-child`` forks a child that outlives the build by a
minute while the lock is held (as the generator's worker pool does). Prints the runner's
lines (``[slow] ...``), then one line ``RESULT {json}``: pid, the value loaded, and how long
the call took.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from trigger_ml.logs import configure
from trigger_ml.runner import Runner, Stage
from trigger_ml.workspace import Workspace


class SlowStage(Stage[str]):
    name = "slow"

    def __init__(self, root: Path, seconds: float, fork_child: bool) -> None:
        self.root = root
        self.seconds = seconds
        self.fork_child = fork_child

    def output_dir(self, subject: Any, ws: Workspace) -> Path:
        return ws.root / "slow" / str(subject)

    def key(self, subject: Any, inputs: Any) -> dict[str, Any]:
        return {"key": str(subject)}

    def run(self, subject: Any, inputs: Any, out: Path) -> None:
        if self.fork_child:
            child = os.fork()
            if child == 0:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                time.sleep(60)
                os._exit(0)
            (self.root / "child.pid").write_text(f"{child}\n")
        with open(self.root / "builds.log", "a") as log:
            log.write(f"{os.getpid()}\n")
        (out / "partial.txt").write_text("started\n")
        time.sleep(self.seconds)
        (out / "value.txt").write_text(f"{os.getpid()}\n")

    def load(self, subject: Any, inputs: Any, out: Path) -> str:
        return (out / "value.txt").read_text().strip()


def main() -> None:
    root, key, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    configure(0)
    start = time.monotonic()
    runner = Runner({"slow": SlowStage(root, seconds, "--fork-child" in sys.argv)}, Workspace(root))
    value = runner.ensure("slow", key)
    print(
        "RESULT",
        json.dumps({"pid": os.getpid(), "value": value, "seconds": time.monotonic() - start}),
        flush=True,
    )


if __name__ == "__main__":
    main()
