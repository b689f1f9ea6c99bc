"""The public fixtures of pytest-vcluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from ..core.errors import ConfigError, VClusterError
from ..core.values import ClusterOptions, cluster_options, deep_merge
from .state import TMP_FACTORY_KEY, item_failed, manager_of

if TYPE_CHECKING:
    from ..core.host import Host
    from ..core.snapshot import Snapshot
    from ..core.vcluster import VCluster
    from .manager import VClusterManager


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def _create(manager: VClusterManager, options: ClusterOptions, *, owner: str, fixture: str) -> VCluster:
    """Create a cluster; a :class:`VClusterError` fails the test with its message only (no traceback)."""
    __tracebackhide__ = True
    try:
        return manager.create(options, owner=owner, fixture=fixture)
    except VClusterError as exc:
        message = str(exc)
    _fail(message)


def marker_options(node: pytest.Item) -> ClusterOptions:
    """The merged ``@pytest.mark.vcluster(...)`` options of a test (closest marker wins)."""
    merged: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("vcluster"))):
        if marker.args:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.vcluster takes keywords only, not {marker.args!r}"
            )
        _usage(cluster_options, marker.kwargs, where=f"{node.nodeid}: @pytest.mark.vcluster")
        for key, value in marker.kwargs.items():
            if key == "values" and isinstance(merged.get("values"), dict) and isinstance(value, dict):
                merged["values"] = deep_merge(merged["values"], value)
            else:
                merged[key] = value
    return _usage(cluster_options, merged, where=f"{node.nodeid}: @pytest.mark.vcluster")


def _usage(parse: Callable[..., ClusterOptions], options: Any, *, where: str) -> ClusterOptions:
    """A bad marker is the user's mistake in the test file: a usage error, reported before any cluster."""
    try:
        return parse(options, where=where)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _record(item: Any, key: str, value: float) -> None:
    props = getattr(item, "user_properties", None)
    if props is not None:
        props.append((key, f"{value:.3f}"))


@pytest.fixture(scope="session")
def vcluster_manager(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> VClusterManager:
    """Session-scoped factory of virtual clusters usable from fixtures of any scope.
    Yields a ``VClusterManager``. ``with vcluster_manager.cluster(values=..., set=..., timeout=...) as vc:``
    creates a cluster (a ``VCluster``) and deletes it when the block ends (kept when the block raised
    and ``--vcluster-keep-on-failure`` is given). Clusters still alive at the end of the session are
    deleted, and the session waits for their host namespaces to be gone. Under pytest-xdist each
    worker has its own manager and clusters; the host cluster is shared.
    """
    pytestconfig.stash[TMP_FACTORY_KEY] = tmp_path_factory  # the run's kubeconfigs and locks go there
    return manager_of(pytestconfig)


@pytest.fixture(scope="session")
def vcluster_host(vcluster_manager: VClusterManager) -> Host:
    """Session-scoped host cluster that virtual clusters run on.
    Yields a ``Host`` with ``kubeconfig_path``, ``context``, ``server``, ``api_client`` (a
    ``kubernetes.client.ApiClient`` for the host) and ``load_image(name)`` (kind: ``kind load
    docker-image``; kubeconfig host: the ``--vcluster-image-loader`` command, else an error).
    A kind host is created once per run under a file lock shared by the xdist workers, and deleted
    at the end if this run created it (unless ``--vcluster-kind-keep``). Setup fails with one clear
    message when the host is missing or unreachable.
    """
    try:
        return vcluster_manager.host
    except VClusterError as exc:
        message = str(exc)
    _fail(message)


def _resolve_fork(request: pytest.FixtureRequest, options: ClusterOptions, *, where: str) -> ClusterOptions:
    """``fork="name"`` names a fixture returning the Snapshot: look it up."""
    __tracebackhide__ = True
    if not isinstance(options.fork, str):
        return options
    from ..core.snapshot import Snapshot

    try:
        value = request.getfixturevalue(options.fork)
    except pytest.FixtureLookupError:
        value = None
        message = (f"{where}: fork={options.fork!r}: no fixture of that name; define a session fixture returning "
                   "vcluster_manager.template(name, prepare) (see the vcluster_template fixture)")
    else:
        message = ""
    if message:
        _fail(message)
    if not isinstance(value, Snapshot):
        _fail(f"{where}: fork={options.fork!r}: fixture {options.fork} returned {type(value).__name__}, not a "
              "Snapshot: return vcluster_manager.template(name, prepare) or vc.snapshot()")
    return replace(options, fork=value)


@pytest.fixture(scope="session")
def vcluster_template(vcluster_manager: VClusterManager) -> Snapshot:
    """Session-scoped snapshot of a prepared cluster, for forks: override it in your conftest.py.
    Yields a ``Snapshot``. Define it as ``return vcluster_manager.template("name", prepare)`` where
    ``prepare(vc)`` installs what every test needs (CRDs, an operator, seed data). The template is
    prepared once per run, under a file lock shared by the xdist workers, and its cluster deleted
    at once; tests then get forks with ``@pytest.mark.vcluster(fork="vcluster_template")`` or
    ``vcluster_factory(fork=vcluster_template)``: each fork is a fresh cluster of its own, starting
    with everything the template had. Cleanup: none (a snapshot is data; forks are deleted like any
    cluster). Without an override, using it fails with how to define it.
    """
    _fail(
        "vcluster_template is not defined: override it in conftest.py, e.g.\n"
        "    @pytest.fixture(scope='session')\n"
        "    def vcluster_template(vcluster_manager):\n"
        "        return vcluster_manager.template('my-operator', prepare=install_my_operator)"
    )


@pytest.fixture
def vcluster(request: pytest.FixtureRequest, vcluster_manager: VClusterManager) -> Iterator[VCluster]:
    """Function-scoped fresh virtual Kubernetes cluster for one test.
    Yields a ready ``VCluster``: ``api_client`` (``kubernetes.client.ApiClient``, admin of the virtual
    cluster), ``kubeconfig_path`` (for kubectl/helm subprocesses), ``name``, ``host_namespace`` and
    ``host_name(kind, name, namespace)``. Options come from ``@pytest.mark.vcluster(values=..., set=...,
    timeout=..., recycle=False, fork="vcluster_template")`` and the ``--vcluster-*`` options; with
    ``--vcluster-pool`` a test with the session's options gets a ready cluster from the warm pool. It is the
    test's own while the test runs. Cleanup: with recycling (``--vcluster-recycle``, on by default) the
    cluster is reset to its first-ready state in the background after the test and handed to the next test
    with the same options (of any xdist worker); a failed reset deletes it. Otherwise
    (``recycle=False``, forks) the host namespace is deleted in the background. A failed test's cluster is
    kept, with connection instructions, when ``--vcluster-keep-on-failure`` is given.
    """
    where = f"{request.node.nodeid}: @pytest.mark.vcluster"
    options = _resolve_fork(request, marker_options(request.node), where=where)
    vc = _create(vcluster_manager, options, owner=request.node.nodeid, fixture="vcluster")
    _record(request.node, "vcluster_setup_seconds", vc.setup_seconds)
    yield vc
    record = vcluster_manager.release(vc, failed=item_failed(request.node))
    if record is not None and record.teardown_seconds is not None:
        _record(request.node, "vcluster_teardown_seconds", record.teardown_seconds)


@pytest.fixture(scope="session")
def vcluster_session(request: pytest.FixtureRequest, vcluster_manager: VClusterManager) -> Iterator[VCluster]:
    """Session-scoped virtual cluster shared by all the tests of the session.
    Yields one ready ``VCluster`` (same attributes as ``vcluster``), created on first use with the
    ``--vcluster-*`` options. Tests sharing it must not depend on each other's objects. Cleanup: deleted
    at the end of the session (kept when a test failed and ``--vcluster-keep-on-failure`` is given).
    Under pytest-xdist there is one per worker.
    """
    vc = _create(vcluster_manager, ClusterOptions(), owner="session", fixture="vcluster_session")
    yield vc
    vcluster_manager.release(vc, failed=request.session.testsfailed > 0)


@pytest.fixture
def vcluster_factory(
    request: pytest.FixtureRequest, vcluster_manager: VClusterManager
) -> Iterator[Callable[..., VCluster]]:
    """Function-scoped factory for several virtual clusters in one test.
    Yields a callable: ``vcluster_factory(values=..., set=..., values_files=..., timeout=..., chart=...,
    connect=..., recycle=False, fork=snapshot)`` returns a new ready ``VCluster`` each call (``fork``: a
    ``Snapshot``, or the name of a fixture returning one). Cleanup: after the test every cluster it made is
    recycled (reset in the background and handed to the next test with the same options) or, with
    ``recycle=False`` and for forks, deleted in the background; kept when the test failed and
    ``--vcluster-keep-on-failure`` is given. Under pytest-xdist each worker gets its own clusters.
    """
    made: list[VCluster] = []

    def factory(**options: Any) -> VCluster:
        __tracebackhide__ = True
        try:
            parsed = cluster_options(options, where="vcluster_factory()")
        except ConfigError as exc:
            message = str(exc)
        else:
            message = ""
        if message:
            _fail(message)
        parsed = _resolve_fork(request, parsed, where="vcluster_factory()")
        vc = _create(vcluster_manager, parsed, owner=request.node.nodeid, fixture="vcluster_factory")
        _record(request.node, f"vcluster_factory_{len(made)}_setup_seconds", vc.setup_seconds)
        made.append(vc)
        return vc

    yield factory
    failed = item_failed(request.node)
    for vc in reversed(made):
        vcluster_manager.release(vc, failed=failed)
