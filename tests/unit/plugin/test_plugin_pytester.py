"""The plugin as users meet it, run in subprocesses with pytester; no cluster is needed (all fail early)."""

from __future__ import annotations

import pytest

ALLOWED = "values, set, values_files, timeout, chart, connect, recycle, kubernetes, fork"
OPTIONS = [
    "--vcluster-host=*",
    "--vcluster-host-kubeconfig=PATH",
    "--vcluster-host-context=NAME",
    "--vcluster-kind-cluster=NAME",
    "--vcluster-kind-keep*",
    "--vcluster-kind-image=REF",
    "--vcluster-kind-config=FILE",
    "--vcluster-chart=PATH",
    "--vcluster-values=FILE",
    "--vcluster-set=KEY=VALUE",
    "--vcluster-timeout=SECONDS",
    "--vcluster-keep-on-failure*",
    "--vcluster-connect=*",
    "--vcluster-stale-after=DURATION",
    "--vcluster-image-loader=COMMAND",
    "--vcluster-syncer-image=REF",
    "--vcluster-syncer-base-image=REF",
]


pytestmark = pytest.mark.usefixtures("clean_vcluster_env")


def test_help_shows_group_and_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["virtual Kubernetes clusters (pytest-vcluster):", *[f"  {o}" for o in OPTIONS]])
    result.stdout.fnmatch_lines(["*vcluster_host (string)*", "*vcluster_set (linelist)*",
                                 "*vcluster_keep_on_failure (bool)*"])


def test_help_works_even_with_bad_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCLUSTER_HOST", "nonsense")
    assert pytester.runpytest_subprocess("--help").ret == 0


def test_marker_is_registered_with_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.vcluster(values=None, set=None, values_files=None, timeout=None, "
                                 "chart=None, connect=None, recycle=None, kubernetes=None, fork=None): *"])


def test_bad_host(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--vcluster-host=foo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vcluster-host='foo' is not valid: use one of auto, kubeconfig, kind"])


def test_bad_host_from_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCLUSTER_HOST", "foo")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: VCLUSTER_HOST='foo' is not valid: use one of auto, kubeconfig, kind"])


def test_bad_timeout_in_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvcluster_timeout = soon\n")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini option vcluster_timeout='soon' is not valid: give a positive number "
                                 "of seconds, or a number with s, m or h (e.g. 180, 30m, 2h)"])


def test_bad_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--vcluster-set", "novalue")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vcluster-set 'novalue' is not valid: expected KEY=VALUE "
                                 "(e.g. --vcluster-set syncer.image.tag=dev)"])


def test_missing_values_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--vcluster-values=missing.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vcluster-values: file not found: */missing.yaml: "
                                 "pass the path of an existing YAML values file"])


def test_missing_kubeconfig(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--vcluster-host-kubeconfig=nowhere/kubeconfig")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vcluster-host-kubeconfig: kubeconfig file not found: */nowhere/kubeconfig: "
                                 "pass the kubeconfig of the host cluster, or use --vcluster-host=kind"])


def test_wrong_marker_keyword(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_m="""
        import pytest

        @pytest.mark.vcluster(valuez={"a": 1})
        def test_a(vcluster):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: test_m.py::test_a: @pytest.mark.vcluster: unknown keyword valuez; "
                                 f"allowed keywords: {ALLOWED}"])


def test_marker_positional_argument(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_m="""
        import pytest

        @pytest.mark.vcluster({"a": 1})
        def test_a():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: test_m.py::test_a: @pytest.mark.vcluster takes keywords only, not *"])


def test_factory_wrong_keyword_fails_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_a(vcluster_factory):
            vcluster_factory(colour="blue")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"vcluster_factory(): unknown keyword colour; allowed keywords: {ALLOWED}"])
    result.stdout.no_fnmatch_line("*During handling*")


def test_fixtures_show_docstrings(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures")
    assert result.ret == 0
    result.stdout.fnmatch_lines_random([
        "vcluster -- *fixtures.py:*",
        "    Function-scoped fresh virtual Kubernetes cluster for one test.",
        "vcluster_session [[]session scope[]] -- *",
        "    Session-scoped virtual cluster shared by all the tests of the session.",
        "vcluster_factory -- *",
        "    Function-scoped factory for several virtual clusters in one test.",
        "vcluster_manager [[]session scope[]] -- *",
        "    Session-scoped factory of virtual clusters usable from fixtures of any scope.",
        "vcluster_host [[]session scope[]] -- *",
        "    Session-scoped host cluster that virtual clusters run on.",
        "*Under pytest-xdist*",
        "*Cleanup:*",
    ])


def test_no_host_fails_setup_with_one_message(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    pytester.makepyfile("def test_a(vcluster): pass\ndef test_b(vcluster_host): pass\ndef test_c(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines([
        "no host cluster: --vcluster-host=auto uses --vcluster-host-kubeconfig (or VCLUSTER_HOST_KUBECONFIG, ini "
        "vcluster_host_kubeconfig) when given, else a kind cluster, but no kubeconfig was given and kind cannot run "
        "here: `kind` is not on PATH (install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation); "
        "`docker` is not on PATH (kind's nodes are Docker containers; install Docker: "
        "https://docs.docker.com/engine/install/). Install what is missing, or pass --vcluster-host-kubeconfig=PATH "
        "to use an existing cluster."])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_kind_requested_but_missing(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    pytester.makepyfile("def test_a(vcluster): pass")
    result = pytester.runpytest_subprocess("--vcluster-host=kind")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["--vcluster-host=kind needs the `kind` binary, which is not on PATH: install kind "
                                 "* or use --vcluster-host=kubeconfig --vcluster-host-kubeconfig=PATH"])


def test_unreachable_host_names_server(pytester: pytest.Pytester) -> None:
    kubeconfig = pytester.path / "host.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: h\n"
        "clusters: [{name: h, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: h, user: {token: t}}]\n"
        "contexts: [{name: h, context: {cluster: h, user: h}}]\n"
    )
    pytester.makepyfile("def test_a(vcluster): pass")
    result = pytester.runpytest_subprocess(f"--vcluster-host-kubeconfig={kubeconfig}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["cannot reach the host cluster's API server at https://127.0.0.1:1 (kubeconfig "
                                 f"{kubeconfig}): *. Start the host cluster or point --vcluster-host-kubeconfig at "
                                 "a running one."])


def test_header_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--vcluster-host=kind", "--vcluster-timeout=33")
    result.stdout.fnmatch_lines(["vcluster: host=kind, kind cluster pytest-vcluster, chart *, timeout 33s"])
    result.assert_outcomes(passed=1)


def test_bad_syncer_image_is_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_subprocess("--vcluster-syncer-image=registry.example.com/syncer")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vcluster-syncer-image='registry.example.com/syncer' is not valid: "
                                 "give REPOSITORY:TAG, e.g. registry.example.com/team/syncer:v1 (build and push one "
                                 "with: python -m pytest_vcluster syncer-image --push REPOSITORY)"])
