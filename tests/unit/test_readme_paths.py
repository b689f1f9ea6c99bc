"""The README's user-path blocks are what CI runs, and the README lists every option.

CI runs the ```sh blocks marked ``<!-- ci: NAME -->`` as written (``hack/readme-run NAME``); these tests
check that the blocks exist, that hack/readme-run extracts exactly them, and that .ci/run reaches them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pytest_vcluster.plugin.options import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def block(name: str) -> str:
    match = re.search(rf"<!-- ci: {re.escape(name)} -->\n```sh\n(.*?)\n```\n", README, re.S)
    assert match, f"README.md has no ```sh block marked <!-- ci: {name} -->"
    return match.group(1)


@pytest.mark.parametrize(("name", "script"), [("kind", "hack/kind-examples"), ("own-cluster", "hack/own-cluster")])
def test_ci_runs_the_readme_block(name: str, script: str) -> None:
    assert f"hack/readme-run {name}" in (ROOT / script).read_text()
    assert re.search(rf"^step \S+ {re.escape(script)}\b", (ROOT / ".ci" / "run").read_text(), re.M)
    text = block(name)
    assert '"${PYTEST_VCLUSTER_WHEEL:-pytest-vcluster}"' in text  # the published package for users, CI's wheel


def test_readme_run_executes_exactly_the_block(tmp_path: Path) -> None:
    """hack/readme-run runs the marked block with bash in a fresh folder; a stand-in pip and pytest show it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for tool in ("pip", "pytest"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        (bin_dir / tool).chmod(0o755)
    # "python3 -m venv venv && . venv/bin/activate" must keep working: the stand-in venv's activate adds bin_dir.
    (bin_dir / "python3").write_text(
        f'#!/bin/sh\nmkdir -p venv/bin && echo "export PATH={bin_dir}:\\$PATH" > venv/bin/activate\n'
    )
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTEST_VCLUSTER_WHEEL": "/w.whl",
           "HOST_KUBECONFIG": "/h", "IMAGE_LOADER": "load"}
    proc = subprocess.run([str(ROOT / "hack" / "readme-run"), "own-cluster"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == [
        "pip install /w.whl pytest-xdist",
        "pytest -n 2 --vcluster-host-kubeconfig=/h --vcluster-image-loader=load",
    ]


def test_readme_run_names_a_missing_block() -> None:
    proc = subprocess.run([str(ROOT / "hack" / "readme-run"), "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hack/readme-run: README.md has no ```sh block marked <!-- ci: nope -->"


@pytest.mark.parametrize("flag", [option.flag for option in OPTIONS])
def test_readme_lists_every_option(flag: str) -> None:
    assert f"`{flag}" in README
