module pytest-vcluster.local/runc-wrapper

go 1.22
