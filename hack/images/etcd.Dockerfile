# etcd built from go.etcd.io/etcd/server/v3, at the upstream image's path.
FROM scratch
COPY etcd /usr/local/bin/etcd
ENTRYPOINT ["/usr/local/bin/etcd"]
