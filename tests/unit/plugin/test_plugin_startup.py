"""Loading the plugin stays cheap: no kubernetes client import until a cluster is needed."""

from __future__ import annotations

import subprocess
import sys


def test_plugin_import_does_not_load_kubernetes() -> None:
    code = "import sys, pytest_vcluster.plugin; print('kubernetes' in sys.modules, 'pyhelm3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
