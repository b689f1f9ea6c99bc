# CoreDNS built from github.com/coredns/coredns, at the upstream image's path.
FROM scratch
COPY coredns /coredns
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
