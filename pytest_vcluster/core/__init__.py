"""The pytest-free core of pytest-vcluster: the host, virtual clusters and everything they are made of.

Nothing here imports pytest or :mod:`pytest_vcluster.plugin` (a unit test walks the imports). Its modules are
public: scripts that drive clusters without pytest (``hack/bench``, ``hack/conformance``) import them by name,
e.g. ``from pytest_vcluster.core import labels, naming``.
"""
