module pytest-vcluster.local/kind-cni

go 1.22
