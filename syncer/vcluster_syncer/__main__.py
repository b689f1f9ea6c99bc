"""Entry point: ``python3 -m vcluster_syncer [--log-level LEVEL]`` (configured by environment variables,
see config.py; ``--log-level`` when run by hand, the chart sets ``LOG_LEVEL``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

from . import contract, coredns, health, kube, kubelet, readiness
from .config import LOG_LEVELS, ConfigError, load_config, log_level
from .context import VIRTUAL
from .errors import Retry
from .parts import default_parts
from .syncer import Syncer, api_service_ip
from .translate.names import host_name_for

log = logging.getLogger("vcluster_syncer")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vcluster-syncer",
        description="The syncer of a pytest-vcluster virtual cluster. Configured by environment variables "
                    "(set by the chart, see docs/architecture.md); arguments override some of them.")
    parser.add_argument("--log-level", metavar="LEVEL",
                        help=f"one of {', '.join(LOG_LEVELS)} (any case); overrides LOG_LEVEL (default INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # exits with status 2 and a usage message on unknown arguments
    try:
        config = load_config(os.environ)
        if args.log_level is not None:
            config = dataclasses.replace(config, log_level=log_level(args.log_level, "--log-level"))
    except ConfigError as exc:
        print(f"vcluster-syncer: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, config.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)

    syncer: Syncer | None = None
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health.serve(config.health_port, lambda: syncer is not None and syncer.ready())

    try:
        host = kube.host_client()
        virtual = kube.virtual_client(config.virtual_server, config.virtual_token_file, config.virtual_ca_file)
        with open(config.virtual_ca_file, encoding="utf-8") as fh:
            ca_pem = fh.read()
    except Exception as exc:  # no in-cluster config and no kubeconfig, unreadable files
        log.error("cannot set up API clients: %s", exc)
        return 1

    # The host Service SERVICE_NAME: owner of every synced object and the address of the virtual API server.
    while not stopping.is_set():
        try:
            ip, uid = api_service_ip(host, config.settings(""))
            break
        except (Retry, kube.ApiError) as exc:
            log.info("waiting for host Service %s/%s: %s", config.host_namespace, config.service_name, exc)
            stopping.wait(2.0)
    else:
        return 0

    syncer = Syncer(config.settings(uid), virtual, host, virtual_ca_pem=ca_pem, api_service_ip=ip)
    kubelet_server = None
    if config.kubelet_port:  # logs/exec/attach/port-forward of pods on fake nodes
        kubelet_server = kubelet.serve(syncer.settings, kube.RawConnector(host.connection),
                                       address=config.kubelet_address, port=config.kubelet_port,
                                       cert_file=config.kubelet_cert_file or None,
                                       key_file=config.kubelet_key_file or None)
    for part in default_parts(syncer.settings):
        syncer.add_part(part)
    log.info("syncing virtual cluster %s into %s (API Service IP %s; parts: %s; log level %s)", config.vcluster_name,
             config.host_namespace, ip, ", ".join(p.name for p in syncer.parts.values()), config.log_level)
    if config.coredns.enabled:
        # CoreDNS runs in this pod (chart); before the first list: every synced pod must see kube-system/kube-dns
        # (dnsConfig cannot change later), and the first sync copies the Service and its Endpoints to the host.
        api_host = urlsplit(host.connection.host).hostname or "localhost"  # as kube.RawConnector reads it
        dns = dataclasses.replace(config.coredns, pod_ip=coredns.own_ip(api_host))
        if not coredns.apply_until_done(virtual, dns, stopping):
            return 0
        dns_ready = coredns.ReadyWatcher(host, config.host_namespace,
                                         host_name_for("Service", coredns.SERVICE, coredns.NAMESPACE, syncer.settings),
                                         cluster_domain=dns.cluster_domain)
        syncer.readiness_gates.append(dns_ready.ready)  # Ready = names resolve (vcluster's "Ready before DNS")
        dns_ready.start(stopping)
        wake = threading.Event()  # a changed kube-dns Service or Endpoints is put back at once
        for kind in (kube.SERVICES, kube.ENDPOINTS):
            syncer.context.informer(VIRTUAL, kind).add_handler(
                lambda key, old, new: wake.set() if coredns.changed(key, new, dns) else None)
        coredns.start_keeper(virtual, dns, stopping, wake)
    starter = threading.Thread(target=syncer.start, name="start", daemon=True)
    starter.start()
    # on the critical path of the cluster's readiness: a GET every 0.1 s, until found
    syncer.wait_for_default_service_account(stopping, interval=0.1)
    while not stopping.is_set() and not syncer.ready():
        stopping.wait(0.05)  # no API call: the first sync and the DNS check run in their own threads
    if not stopping.is_set():
        readiness.mark_ready(host, config.host_namespace, contract.control_plane_pod(config.vcluster_name), stopping,
                             now=syncer.context.now)
    while not stopping.wait(5.0):
        pass
    syncer.stop()
    if kubelet_server is not None:
        kubelet_server.stop()
    time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
