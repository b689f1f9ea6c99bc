"""vcluster_syncer: copies low-level objects from a virtual Kubernetes API server into a host namespace."""

__version__ = "0.1.0"
