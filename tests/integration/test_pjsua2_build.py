"""The pjsua2 setup: a build that cannot happen falls back to the PyPI wheel with one clear
warning, and the engine then reads 4 calls per process from the library it loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = ("from ivr.sip.build import probe; b = probe(); "
         "print(b.build, b.max_calls, b.srtp)")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def _setup(script: Path, python: Path, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), str(python)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "IVR_CACHE": str(cache), **env})


def _probe(python: Path) -> list[str]:
    out = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    return out.stdout.split()


def test_a_build_that_cannot_happen_falls_back_to_the_wheel(fresh_venv: Path, tmp_path: Path) -> None:
    # the script away from the checkout: no vendored tarball beside it, and a clone source that
    # does not exist, so the build fails where a machine without the source would
    scripts = tmp_path / "repo" / "scripts"
    shutil.copytree(REPO / "scripts", scripts)
    r = _setup(scripts / "build-pjsua2.sh", fresh_venv, tmp_path / "cache",
               IVR_PJPROJECT_GIT=str(tmp_path / "no-such-repo"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cannot fetch pjproject" in r.stderr
    assert "falling back to the PyPI wheel pjsua2-python (4 calls per worker, no SRTP)" in r.stderr
    assert _probe(fresh_venv) == ["wheel", "4", "False"]
    # nothing half-built was cached: the next setup tries again
    assert not any((tmp_path / "cache").rglob("*.whl"))


def test_the_checkout_venv_runs_the_source_build() -> None:
    """What `make serve`/`make test` installed: the engine's own environment."""
    assert _probe(Path(sys.executable)) == ["source", "512", "True"]
    # a second setup finds it installed and does nothing
    r = _setup(REPO / "scripts" / "build-pjsua2.sh", Path(sys.executable),
               Path(os.environ.get("IVR_CACHE", Path.home() / ".cache" / "ivr")))
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
