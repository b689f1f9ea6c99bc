# registry.k8s.io/e2e-test-images/nonroot (test/images/nonroot): a Debian root whose user is 1234.
FROM pytest-vcluster.local/debian-tools:bookworm
USER 1234
