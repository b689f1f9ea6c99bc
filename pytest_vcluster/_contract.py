"""The rules the plugin shares with the syncer and the chart: ``contract``, the syncer's own module.

They are defined once, in the syncer's ``vcluster_syncer/contract.py`` (host names of synced
objects, label keys, the keys of Secret ``vc-R``, ports, the syncer's variables). The plugin does
not depend on the ``vcluster_syncer`` distribution; it loads that one file (standard library only)
from the syncer source it carries anyway to build the syncer image:

* installed from the wheel: ``pytest_vcluster/_syncer/vcluster_syncer/contract.py``;
* a source checkout: ``syncer/vcluster_syncer/contract.py`` next to ``pytest_vcluster/``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

_MODULE = "pytest_vcluster._shared_contract"
_HERE = Path(__file__).resolve().parent
#: where the file is looked for, in this order
CANDIDATES = (
    _HERE / "_syncer" / "vcluster_syncer" / "contract.py",
    _HERE.parent / "syncer" / "vcluster_syncer" / "contract.py",
)


def _load() -> ModuleType:
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    for path in CANDIDATES:
        if path.is_file():
            spec = importlib.util.spec_from_file_location(_MODULE, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[_MODULE] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError(
        "pytest-vcluster: the syncer's contract.py was not found (looked in "
        f"{', '.join(str(p) for p in CANDIDATES)}); reinstall pytest-vcluster"
    )


if TYPE_CHECKING:
    from vcluster_syncer import contract
else:
    contract = _load()

__all__ = ["contract"]
