# registry.k8s.io/e2e-test-images/agnhost (test/images/agnhost/Dockerfile of Kubernetes) on the
# debootstrap'd Debian tools root instead of Alpine: agnhost built from k8s.io/kubernetes, porter's
# certificates, our CoreDNS at /coredns, the agnhost-2 link, /uploads and the image-defined user/group.
FROM pytest-vcluster.local/debian-tools:bookworm
COPY coredns /coredns
# PORT 80 test-webserver, 8080/8081 netexec, 9376 serve-hostname, 5000 grpc-health-checking
EXPOSE 80 8080 8081 9376 5000
RUN mkdir /uploads && ln -s /usr/bin/iperf /usr/local/bin/iperf
COPY localhost.crt /localhost.crt
COPY localhost.key /localhost.key
COPY agnhost /agnhost
RUN ln -s agnhost /agnhost-2 \
    && groupadd -g 50000 group-defined-in-image \
    && useradd -u 1000 -m -G group-defined-in-image user-defined-in-image
ENTRYPOINT ["/agnhost"]
CMD ["pause"]
