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
from types import ModuleType
from typing import TYPE_CHECKING

from . import files

_MODULE = "pytest_vcluster._shared_contract"
#: where the file is looked for, in this order (:data:`files.CONTRACT`)
CANDIDATES = tuple(files.candidates(*files.CONTRACT[:2]))


def _load() -> ModuleType:
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    path = files.package_file(*files.CONTRACT[:2])
    if path is None:
        raise ImportError(
            "pytest-vcluster: the syncer's contract.py was not found (looked in "
            f"{files.looked_in(*files.CONTRACT[:2])}); reinstall pytest-vcluster"
        )
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from vcluster_syncer import contract
else:
    contract = _load()

__all__ = ["contract"]
