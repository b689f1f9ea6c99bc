# local-path-provisioner built from github.com/rancher/local-path-provisioner,
# at the path of kind's image (its manifest runs `local-path-provisioner`).
FROM scratch
COPY local-path-provisioner /usr/local/bin/local-path-provisioner
ENV PATH=/usr/local/bin
ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]
