# hack/kind-cni (a stand-in for kindnetd, which cannot be built here) under
# kindnetd's image name, so kind's default CNI manifest runs unchanged; busybox
# provides `ip` for the routes to other nodes.
FROM pytest-vcluster.local/busybox:1.35
COPY kindnetd /bin/kindnetd
ENTRYPOINT ["/bin/kindnetd"]
