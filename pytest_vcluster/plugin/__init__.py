"""pytest-vcluster's hooks (the fixtures are in :mod:`pytest_vcluster.plugin.fixtures`, the options in
:mod:`pytest_vcluster.plugin.options`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from ..core import naming as _naming
from . import options
from .state import MANAGER_KEY, REPORTS_KEY, RUN_ID_KEY, SETTINGS_KEY, SUMMARY_KEY, TMP_FACTORY_KEY

pytest_plugins = ["pytest_vcluster.plugin.fixtures"]

def pytest_addoption(parser: pytest.Parser) -> None:
    """Every option from its one record in :data:`pytest_vcluster.plugin.options.OPTIONS`."""
    group = parser.getgroup("vcluster", "virtual Kubernetes clusters (pytest-vcluster)")
    for option in options.OPTIONS:
        env_note = f" [env {option.env_var}]" if option.env_var else ""
        kwargs: dict[str, Any] = {"dest": option.dest, "default": None,
                                  "help": f"{option.help}{env_note} [ini {option.ini_key}]"}
        if option.flag_only:
            kwargs["action"] = "store_true"
        elif option.repeat:
            kwargs.update(action="append", metavar=option.metavar)
        else:
            kwargs["metavar"] = option.metavar
        group.addoption(option.flag, **kwargs)
        ini_default: Any = False if option.flag_only else [] if option.repeat else None
        parser.addini(option.ini_key, help=option.help, type=option.ini_type, default=ini_default)  # type: ignore[arg-type]


def _tmp_factory(config: pytest.Config) -> pytest.TempPathFactory | None:
    """pytest's ``tmp_path_factory``: the fixture's (stashed by ``vcluster_manager``), else the config's own
    (an xdist controller runs no fixtures, but its basetemp is the parent of the workers')."""
    factory = config.stash.get(TMP_FACTORY_KEY, None)
    return factory if factory is not None else getattr(config, "_tmp_path_factory", None)


def _shared_dir(config: pytest.Config) -> Path:
    """A directory shared by the xdist controller and its workers (the controller's basetemp)."""
    factory = _tmp_factory(config)
    if factory is None:
        base = Path(tempfile.gettempdir()) / f"pytest-vcluster-{os.getuid() if hasattr(os, 'getuid') else 0}"
    else:
        base = factory.getbasetemp()
        if hasattr(config, "workerinput"):
            base = base.parent
    path = base / "vcluster-shared"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _workdir(config: pytest.Config) -> Path:
    factory = _tmp_factory(config)
    base = Path(tempfile.mkdtemp(prefix="pytest-vcluster-")) if factory is None else factory.getbasetemp()
    path = base / "vcluster"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", options.marker_help())
    if config.getoption("help", default=False):
        return
    from ..core.errors import ConfigError
    from .manager import Summary, VClusterManager

    try:
        settings = options.from_pytest_config(config, os.environ)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        run_id = str(workerinput.get("vcluster_run_id") or _naming.run_id_from_token(workerinput["testrunuid"]))
        worker = str(workerinput.get("workerid", "gw"))
        run_pid = int(workerinput.get("vcluster_run_pid") or os.getppid())
    else:
        run_id = _naming.new_run_id()
        worker = "main"
        run_pid = os.getpid()
    config.stash[SETTINGS_KEY] = settings
    config.stash[RUN_ID_KEY] = run_id
    config.stash[SUMMARY_KEY] = Summary()
    config.stash[MANAGER_KEY] = VClusterManager(
        settings,
        run_id=run_id,
        worker=worker,
        shared_dir=lambda: _shared_dir(config),
        workdir=lambda: _workdir(config),
        run_pid=run_pid,
        progress=_progress_writer(config),
    )


def _progress_writer(config: pytest.Config) -> Any:
    """Progress lines of slow one-off steps (building and loading the syncer image), shown while output
    is captured: on the terminal, or, in an xdist worker, on its stderr (which the controller's terminal
    shows), and in the log."""
    import logging
    import sys

    log = logging.getLogger("pytest_vcluster")
    worker = getattr(config, "workerinput", {}).get("workerid")

    def write(line: str) -> None:
        log.info("pytest-vcluster: %s", line)
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if worker is None and reporter is not None:
                reporter.write_line(f"pytest-vcluster: {line}")
            else:
                sys.stderr.write(f"[{worker or 'pytest'}] pytest-vcluster: {line}\n")
                sys.stderr.flush()

    return write


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: give every worker this run's id (shared name prefix and labels)."""
    run_id = node.config.stash.get(RUN_ID_KEY, None)
    if run_id:
        node.workerinput["vcluster_run_id"] = run_id
    node.workerinput["vcluster_run_pid"] = os.getpid()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect a worker's timings, kept clusters and leaks for the summary."""
    data = getattr(node, "workeroutput", {}).get("vcluster")
    summary = node.config.stash.get(SUMMARY_KEY, None)
    if data and summary is not None:
        summary.merge_dict(data)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reject wrong ``@pytest.mark.vcluster`` keywords before any cluster is made."""
    from .fixtures import marker_options

    for item in items:
        if item.get_closest_marker("vcluster") is not None:
            marker_options(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    item.stash.setdefault(REPORTS_KEY, {})[report.when] = report
    if report.failed and report.when in ("call", "setup"):
        manager = item.config.stash.get(MANAGER_KEY, None)
        if manager is None:
            return
        clusters = manager.clusters_of(item.nodeid)
        if clusters:
            from .report import diagnostics_section

            for title, text in diagnostics_section(clusters):
                report.sections.append((title, text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    """Before the last test of this process (xdist keeps a worker's last test until it shuts down) tears its
    fixtures down: its clusters are deleted, not reset for a test that will not come."""
    if nextitem is None:
        manager = item.config.stash.get(MANAGER_KEY, None)
        if manager is not None:
            manager.no_more_tests()
    yield


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return None
    from .report import header_line

    return header_line(settings, os.environ)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The process that ends the run (the xdist controller, or the only process) starts the warm pool."""
    config = session.config
    manager = config.stash.get(MANAGER_KEY, None)
    if manager is None or hasattr(config, "workerinput") or config.getoption("collectonly", default=False):
        return
    manager.start_pool()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After the session's fixtures are torn down: wait for deleted namespaces, report leaks,
    hand results to the xdist controller, delete a kind host this run created."""
    config = session.config
    manager = config.stash.get(MANAGER_KEY, None)
    summary = config.stash.get(SUMMARY_KEY, None)
    if manager is None or summary is None:
        return
    # xdist workers' summaries arrived already (pytest_testnodedown): did they leave recycled clusters?
    manager.finish(recycled_elsewhere=bool(summary.pool.recycled))
    summary.merge_dict(manager.summary.to_dict())
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["vcluster"] = manager.summary.to_dict()
        return
    settings = config.stash[SETTINGS_KEY]
    if settings.host in ("kind", "auto") and not settings.kind_keep:
        from ..core.host import delete_kind_if_created, kind_state_dir

        error = delete_kind_if_created(settings, kind_state_dir(), run_id=config.stash[RUN_ID_KEY])
        if error:
            summary.errors.append(error)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = config.stash.get(SUMMARY_KEY, None)
    settings = config.stash.get(SETTINGS_KEY, None)
    if summary is None or settings is None:
        return
    from .report import write_summary

    write_summary(terminalreporter, summary, settings)
