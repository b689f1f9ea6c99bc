"""The GitHub workflows (.github/workflows) stay consistent with the project.

They only run on GitHub, so nothing here would notice a renamed image, a moved
test command or a dropped lint step: these tests read the real files (the
workflows, chart/values.yaml, README.md, tox.ini) and compare them. The release
also needs one version: ``pytest_vcluster.__version__`` (written in pytest_vcluster/core/version.py), which
pyproject.toml reads and chart/Chart.yaml's appVersion repeats.
"""

from __future__ import annotations

import configparser
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

import pytest_vcluster

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
SHELL_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict), name
    return data


def triggers(workflow: dict[Any, Any]) -> Any:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow["on"] if "on" in workflow else workflow[True]


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def resolve(text: str, env: dict[str, str]) -> str:
    """Substitutes ``${{ env.NAME }}``; any other expression is left as ``<expr>``."""

    def sub(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("env.") and expr[4:] in env:
            return resolve(str(env[expr[4:]]), env)
        return f"<{expr}>"

    return EXPRESSION.sub(sub, text)


def expand(word: str, env: dict[str, str]) -> str:
    """A word of a `run:` script with its ``$NAME`` / ``${NAME}`` taken from the workflow's env."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in env, f"${name} is not set by the workflow"
        return resolve(str(env[name]), env)

    return SHELL_VARIABLE.sub(sub, resolve(word, env))


def step_env(workflow: dict[str, Any], job: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    return {**(workflow.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}


def commands(script: str) -> list[list[str]]:
    """The simple commands of a `run:` script (continuation lines joined, comments dropped)."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def repository_of(ref: str) -> str:
    """``registry/path/name:tag`` -> ``registry/path/name`` (a registry port is not a tag)."""
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def chart_syncer_repository() -> str:
    values = yaml.safe_load((ROOT / "chart" / "values.yaml").read_text())
    return str(values["syncer"]["image"]["repository"])


def readme_test_command() -> list[str]:
    """The README's test command: the line of its `sh` blocks that runs hack/test."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    found = [words for block in blocks for words in commands(block) if words[0] == "hack/test"]
    assert found, "README.md names no hack/test command in an sh block"
    return found[0]


def test_workflows_are_named_and_parse() -> None:
    names = sorted(p.name for p in WORKFLOWS.glob("*.y*ml"))
    assert names == ["ci.yml", "release.yml"]
    for name in names:
        assert load(name)["jobs"], name


# --------------------------------------------------------------------------- ci.yml


def test_ci_test_job_runs_the_readme_test_command_as_root() -> None:
    workflow = load("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(workflow))
    job = workflow["jobs"]["test"]
    runs = [words for step in steps(job) if "run" in step for words in commands(step["run"])]
    test_runs = [words for words in runs if "hack/test" in words]
    assert len(test_runs) == 1, runs
    words = test_runs[0]
    command = readme_test_command()
    assert words[words.index("hack/test") : words.index("hack/test") + len(command)] == command
    # As root, with the caller's PATH (setup-python's and setup-go's tools) handed through sudo.
    assert words[0] == "sudo"
    assert any(w.startswith("PATH=") for w in words[: words.index("hack/test")])
    assert (ROOT / "hack" / "test").stat().st_mode & 0o111


def test_ci_caches_the_host_builds_keyed_on_the_pinned_versions() -> None:
    job = load("ci.yml")["jobs"]["test"]
    caches = [step for step in steps(job) if str(step.get("uses", "")).startswith("actions/cache@")]
    assert len(caches) == 1
    cache = caches[0]["with"]
    # Every file that pins what the cache holds (versions, Go builds, Debian packages of the images).
    pinned = ("hack/_host/versions.py", "hack/_host/build.py", "hack/_host/e2e_images.py")
    assert f"hashFiles({', '.join(repr(p) for p in pinned)})" in cache["key"]
    assert all((ROOT / p).is_file() for p in pinned)
    paths = {resolve(p.strip(), {}) for p in cache["path"].splitlines() if not p.strip().startswith("!")}
    assert paths == {"<steps.paths.outputs.vcluster>", "<steps.paths.outputs.gomodcache>"}
    # Those outputs are the runner's ~/.cache/pytest-vcluster and the Go module cache, and the test
    # run as root is pointed at the same two.
    script = next(step["run"] for step in steps(job) if step.get("id") == "paths")
    assert '"vcluster=$HOME/.cache/pytest-vcluster"' in script
    assert '"gomodcache=$(go env GOMODCACHE)"' in script
    run = " ".join(" ".join(w) for step in steps(job) if "run" in step for w in commands(step["run"]))
    assert "PYTEST_VCLUSTER_CACHE=${{ steps.paths.outputs.vcluster }}" in run
    assert "GOMODCACHE=${{ steps.paths.outputs.gomodcache }}" in run


def test_ci_lint_job_runs_tox_lint_which_runs_actionlint() -> None:
    job = load("ci.yml")["jobs"]["lint"]
    runs = [words for step in steps(job) if "run" in step for words in commands(step["run"])]
    assert ["tox", "-e", "lint"] in runs
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    lint_commands = tox["testenv:lint"]["commands"]
    assert "{toxinidir}/hack/actionlint" in lint_commands.split()
    assert "{toxinidir}/hack/actionlint" in tox["testenv:lint"]["allowlist_externals"].split()
    assert (ROOT / "hack" / "actionlint").stat().st_mode & 0o111


# --------------------------------------------------------------------------- release.yml


def release_pushes() -> tuple[list[str], list[str]]:
    """(references tagged by docker/build-push-action, REF arguments of `syncer-image --push`)."""
    workflow = load("release.yml")
    tagged: list[str] = []
    pushed: list[str] = []
    for job in workflow["jobs"].values():
        for step in steps(job):
            env = step_env(workflow, job, step)
            if str(step.get("uses", "")).startswith("docker/build-push-action@"):
                tagged += [resolve(t.strip(), env) for t in str(step["with"]["tags"]).splitlines() if t.strip()]
            for words in commands(step.get("run", "")):
                if words[:3] == ["python", "-m", "pytest_vcluster"] and "--push" in words:
                    pushed.append(expand(words[words.index("--push") + 1], env))
    return tagged, pushed


def test_release_pushes_the_charts_default_syncer_image() -> None:
    repository = chart_syncer_repository()
    tagged, pushed = release_pushes()
    assert repository == "ghcr.io/pytest-vcluster/syncer"
    assert {repository_of(ref) for ref in tagged} == {repository}
    assert sorted(ref.rpartition(":")[2] for ref in tagged) == ["<needs.build.outputs.version>", "latest"]
    # The content-addressed <version>-<hash> tag the installed plugin computes, in the same repository.
    assert pushed == [repository]


def test_release_builds_the_syncer_multi_arch_from_its_dockerfile() -> None:
    job = load("release.yml")["jobs"]["syncer-image"]
    uses = [str(step.get("uses", "")).split("@")[0] for step in steps(job)]
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action", "docker/login-action"):
        assert uses.index(action) < uses.index("docker/build-push-action"), action
    build = next(s for s in steps(job) if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert build["with"]["context"] == "syncer"
    assert (ROOT / "syncer" / "Dockerfile").is_file()
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True
    login = next(s for s in steps(job) if str(s.get("uses", "")).startswith("docker/login-action@"))
    assert login["with"]["registry"] == chart_syncer_repository().split("/")[0]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    # The plugin's push runs from the installed wheel, after it was installed.
    runs = [step.get("run", "") for step in steps(job)]
    install = next(i for i, r in enumerate(runs) if "pip install dist/*.whl" in r)
    push = next(i for i, r in enumerate(runs) if "pytest_vcluster syncer-image --push" in r)
    assert install < push
    assert steps(job)[push]["working-directory"] != "."


def test_release_runs_on_version_tags_and_publishes_with_trusted_publishing() -> None:
    workflow = load("release.yml")
    assert triggers(workflow) == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {}
    build = workflow["jobs"]["build"]
    assert any(words == ["python", "-m", "build"] for s in steps(build) for words in commands(s.get("run", "")))
    assert any("helm package chart" in s.get("run", "") for s in steps(build))
    pypi = workflow["jobs"]["pypi"]
    assert pypi["permissions"] == {"id-token": "write"}
    assert pypi["needs"] == "build"
    assert [s["uses"] for s in steps(pypi) if "pypi-publish" in s.get("uses", "")] == [
        "pypa/gh-action-pypi-publish@release/v1"
    ]


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_actions_are_pinned_to_a_major_version(name: str) -> None:
    for job in load(name)["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+|release/v\d+)", step["uses"]), step["uses"]


# --------------------------------------------------------------------------- one version


def pyproject() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the backport, from the test extra
        import tomli as tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_package_version_is_written_once_in_the_package() -> None:
    """pyproject.toml takes the version from pytest_vcluster/core/version.py (hatch's version source; the
    package's ``__version__`` is that one), and names none of its own."""
    project = pyproject()
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"] == {"path": "pytest_vcluster/core/version.py"}
    source = (ROOT / "pytest_vcluster" / "core" / "version.py").read_text()
    # The one line hatch's regex source reads, equal to what the import gives.
    assert re.findall(r"(?m)^__version__ = \"([^\"]+)\"$", source) == [pytest_vcluster.__version__]
    assert str(Version(pytest_vcluster.__version__)) == pytest_vcluster.__version__  # PEP 440, normalised


def test_the_charts_app_version_is_the_package_version() -> None:
    """appVersion is the chart's default syncer image tag, which the release pushes as the package version
    (release.yml refuses a tag otherwise); the chart's own ``version`` moves on its own."""
    chart = yaml.safe_load((ROOT / "chart" / "Chart.yaml").read_text())
    assert chart["appVersion"] == pytest_vcluster.__version__


def test_the_wheel_and_the_sdist_carry_the_license_the_typing_marker_and_the_changelog() -> None:
    project = pyproject()
    assert project["project"]["license"] == "Apache-2.0"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    # The wheel packs the whole package directory, the sdist includes these paths.
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["pytest_vcluster"]
    assert (ROOT / "pytest_vcluster" / "py.typed").is_file()
    assert "Typing :: Typed" in project["project"]["classifiers"]
    include = project["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert {"pytest_vcluster", "LICENSE", "CHANGELOG.md", "README.md"} <= set(include)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert project["project"]["urls"]["Changelog"].endswith("/blob/main/CHANGELOG.md")
