"""Where the processes of one `ivr serve` keep their Prometheus samples.

Workers are separate processes, so the samples use prometheus_client's multiprocess mode: every
process (supervisor, workers, recognition service) writes its own files in one directory, and the
supervisor's /metrics sums them. The mode is fixed when prometheus_client is first imported, so
the directory is made here, by the `serve` command before it imports the server (this module must
not import prometheus_client), and the children inherit it through the environment.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(state_dir: Path) -> Path:
    """`<state dir>/metrics`, emptied (a previous run's samples would be summed in), and named in
    this process's environment for the processes it starts."""
    path = state_dir.resolve() / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.environ[ENV] = str(path)
    return path


def current() -> Path | None:
    """The directory this process writes its samples to, if any."""
    value = os.environ.get(ENV)
    return Path(value) if value else None
