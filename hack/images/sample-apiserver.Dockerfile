# registry.k8s.io/e2e-test-images/sample-apiserver: k8s.io/sample-apiserver, ENTRYPOINT as upstream;
# on our busybox instead of Alpine.
FROM pytest-vcluster.local/busybox:1.35
COPY sample-apiserver /sample-apiserver
ENTRYPOINT ["/sample-apiserver"]
