# The sandbox image: Kubernetes' pause.c, compiled statically on this machine.
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
