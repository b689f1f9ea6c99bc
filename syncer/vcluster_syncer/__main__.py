"""Entry point: ``python3 -m vcluster_syncer`` (configured by environment variables, see config.py)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from . import health, kube
from .config import ConfigError, load_config
from .parts import default_parts
from .syncer import Retry, Syncer, api_service_ip

log = logging.getLogger("vcluster_syncer")


def main() -> int:
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"vcluster-syncer: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, config.log_level, logging.INFO),
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
    for part in default_parts(syncer.settings):
        syncer.add_part(part)
    log.info("syncing virtual cluster %s into %s (API Service IP %s)", config.vcluster_name,
             config.host_namespace, ip)
    starter = threading.Thread(target=syncer.start, name="start", daemon=True)
    starter.start()
    while not stopping.is_set() and not syncer.default_service_account.is_set():
        syncer.check_default_service_account()
        stopping.wait(1.0)
    while not stopping.wait(5.0):
        pass
    syncer.stop()
    time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
