"""One of each: a missing tool raises one type, one runner runs the tools, one function layers a cluster's values,
one helper runs a step once per run."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_vcluster.core import helm, host, images, run, verbs
from pytest_vcluster.core.errors import CommandError, HostError, ImageBuildError, MissingToolError, SnapshotError
from pytest_vcluster.core.once import run_once
from pytest_vcluster.core.values import ClusterOptions, resolve_values, under_service_cidr


@pytest.mark.parametrize("require", [helm.require_helm, host.require_kind, images.docker_binary,
                                     verbs.require_kubectl])
def test_a_missing_tool_raises_one_type(monkeypatch: pytest.MonkeyPatch, require: Callable[[], str]) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(MissingToolError, match="not on PATH"):
        require()


@pytest.mark.parametrize("error", [HostError, ImageBuildError])
def test_one_runner_names_the_command_and_the_end_of_its_output(error: type[Exception]) -> None:
    assert run.run([sys.executable, "-c", "print('out')"], what="w", error=error) == "out\n"  # type: ignore[arg-type]
    code = "import sys; print('\\n'.join(str(i) for i in range(20)), file=sys.stderr); sys.exit(3)"
    with pytest.raises(error) as info:
        run.run([sys.executable, "-c", code], what="counting", error=error)  # type: ignore[arg-type]
    assert str(info.value).startswith("counting: `")
    assert str(info.value).endswith("failed (exit 3):\n" + "\n".join(str(i) for i in range(5, 20)))
    with pytest.raises(error, match=r"^t: cannot run `/no/such/tool`"):
        run.run(["/no/such/tool"], what="t", error=error)  # type: ignore[arg-type]


def test_one_runner_hands_back_a_failed_process_and_carries_the_output_of_a_failure() -> None:
    """``complete``: the process whatever its exit code (docker image inspect, docker buildx version); the default
    error, :class:`CommandError`, carries the command, the exit code and the output (``vc.kubectl``, ``vc.helm``)."""
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"
    proc = run.complete([sys.executable, "-c", code], what="w", error=ImageBuildError)
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, "out\n", "err\n")
    with pytest.raises(ImageBuildError, match=r"^w: cannot run `/no/such/tool`"):
        run.complete(["/no/such/tool"], what="w", error=ImageBuildError)
    with pytest.raises(CommandError) as info:
        run.run([sys.executable, "-c", code])
    assert str(info.value).startswith("`") and str(info.value).endswith("failed (exit 4): err")
    assert (info.value.command[1:], info.value.returncode, info.value.stdout, info.value.stderr) == (
        ["-c", code], 4, "out\n", "err\n")
    assert run.run([sys.executable, "-c", code], check=False) == "out\n"
    assert run.run([sys.executable, "-c", "print(input()[::-1])"], input="abc\n") == "cba\n"


def test_values_are_layered_in_one_fixed_order(tmp_path: Path) -> None:
    """Lowest first: service CIDR, fork, syncer image, session values, the cluster's files, values and set."""
    values_file = tmp_path / "v.yaml"
    values_file.write_text("k: {files: 1, values: 1, set: 1}\n")
    layers = under_service_cidr(resolve_values(
        fork={"serviceCIDR": "10.1.0.0/16", "k": {"fork": 1, "image": 1}},
        image={"k": {"image": 2, "settings": 1}},
        settings={"k": {"settings": 2, "files": 0}},
        options=ClusterOptions(values_files=(values_file,), values={"k": {"values": 2, "set": 0}},
                               set={"k": {"set": 2}}),
    ), "10.0.0.0/16")
    assert layers == {"serviceCIDR": "10.1.0.0/16",
                      "k": {"fork": 1, "image": 2, "settings": 2, "files": 1, "values": 2, "set": 2}}
    assert under_service_cidr(resolve_values(values={"a": 1}, set={"a": 2}), "10.0.0.0/16") == {
        "serviceCIDR": "10.0.0.0/16", "a": 2}
    assert list(under_service_cidr({"a": 1, "serviceCIDR": None}, "10.0.0.0/16").items()) == [
        ("serviceCIDR", None), ("a", 1)]  # as the lowest layer of a merge: first, and any value above wins
    assert resolve_values() == {} and under_service_cidr({}, None) == {}


def test_run_once_makes_once_and_repeats_a_failure(tmp_path: Path) -> None:
    made: list[Path] = []

    def make(path: Path) -> str:
        made.append(path)
        path.write_text("value")
        return "value"

    first = run_once(tmp_path, "step", "run1", make=make, read=lambda p: p.read_text(), timeout=5)
    again = run_once(tmp_path, "step", "run1", make=make, read=lambda p: p.read_text(), timeout=5)
    assert (first.value, first.made, again.value, again.made) == ("value", True, "value", False)
    assert made == [tmp_path / "step-run1.done"]

    def broken(path: Path) -> str:
        raise RuntimeError("no luck")

    for _ in range(2):  # the second process gets the first one's message, without trying again
        with pytest.raises(SnapshotError, match="^step failed: no luck$"):
            run_once(tmp_path, "step", "run2", make=broken, read=str, timeout=5, failed=SnapshotError,
                     catch=(Exception,), wrap=True, describe=lambda exc: f"step failed: {exc}")
    assert (tmp_path / "step-run2.error").read_text() == "step failed: no luck"
