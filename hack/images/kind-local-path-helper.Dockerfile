# kind's local-path helper image holds only sh, rm and mkdir (for the setup and
# teardown scripts of a volume): busybox provides them.
FROM pytest-vcluster.local/busybox:1.35
