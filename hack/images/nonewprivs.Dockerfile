# registry.k8s.io/e2e-test-images/nonewprivs (test/images/nonewprivs): nnp, built from the Kubernetes
# module, setuid root; on our busybox instead of Alpine.
FROM pytest-vcluster.local/busybox:1.35
COPY nnp /usr/local/bin/nnp
RUN chmod +s /usr/local/bin/nnp
CMD ["nnp"]
