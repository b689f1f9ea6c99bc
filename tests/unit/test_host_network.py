"""hack/host's filter rules for the service range: what kube-proxy did not translate is refused."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
from _host import cluster  # noqa: E402


def test_untranslated_service_traffic_is_refused_tcp_with_a_reset() -> None:
    rules = cluster.service_reject_rules("10.96.0.0/12").splitlines()
    chain = cluster.SERVICE_REJECT_CHAIN
    assert rules[0] == "*filter" and rules[-1] == "COMMIT"
    assert f":{chain} - [0:0]" in rules and f"-F {chain}" in rules
    assert (f"-A {chain} -d 10.96.0.0/12 -p tcp -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset"
            in rules)
    assert (f"-A {chain} -d 10.96.0.0/12 -m conntrack ! --ctstate DNAT -j REJECT "
            "--reject-with icmp-port-unreachable") in rules
    # translated traffic (a Service's port, with or without endpoints) is kube-proxy's business
    assert all("--ctstate DNAT" in r for r in rules if r.startswith(f"-A {chain}"))


def test_the_chain_is_removed_by_down() -> None:
    assert cluster.SERVICE_REJECT_CHAIN.startswith(cluster.CHAIN_PREFIXES)


def test_pods_untranslated_service_traffic_is_routed_nowhere() -> None:
    rule = cluster.pod_service_rule("pvc-host0", "10.96.0.0/12")
    assert rule == ["priority", str(cluster.POD_SERVICE_RULE_PRIORITY), "iif", "pvc-host0", "to", "10.96.0.0/12",
                    "prohibit"]
    # below the kernel's "lookup local" (0) and above "lookup main" (32766), so the main table's routes to the
    # pod network never see such a packet
    assert 0 < cluster.POD_SERVICE_RULE_PRIORITY < 32766
