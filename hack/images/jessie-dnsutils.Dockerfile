# Stand-in for registry.k8s.io/e2e-test-images/jessie-dnsutils: the Debian (bookworm) tools root has
# dnsutils (dig, nslookup, host); /coredns as upstream's.
FROM pytest-vcluster.local/debian-tools:bookworm
COPY coredns /coredns
CMD ["bash"]
