"""Put /work/main/syncer on sys.path so `vcluster_syncer` imports without installing it."""

from __future__ import annotations

import sys
from pathlib import Path

SYNCER = Path(__file__).resolve().parents[3] / "syncer"
if str(SYNCER) not in sys.path:
    sys.path.insert(0, str(SYNCER))
