# kube-proxy built from k8s.io/kubernetes, at the upstream image's path, with
# iptables (nft backend, as the kind node selects) and conntrack taken from the
# kind node's Debian root with their libraries (as distroless-iptables does).
ARG BASE
FROM ${BASE} AS build
RUN set -e; mkdir -p /stage/usr/sbin /stage/usr/local/bin /stage/tmp /stage/run /stage/var/run; \
    for b in /usr/sbin/xtables-nft-multi /usr/sbin/conntrack; do \
      cp -a --parents "$b" /stage/; \
      for lib in $(ldd "$b" | grep -o '/[^ ]*\.so[^ ]*'); do cp -aL --parents "$lib" /stage/ 2>/dev/null || true; done; \
    done; \
    cp -a --parents /usr/lib/x86_64-linux-gnu/xtables /stage/; \
    for lib in $(ldd /usr/lib/x86_64-linux-gnu/xtables/*.so | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do cp -aL --parents "$lib" /stage/ 2>/dev/null || true; done; \
    cp -aL --parents /lib64/ld-linux-x86-64.so.2 /stage/; \
    for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
      ln -s xtables-nft-multi /stage/usr/sbin/$t; done; \
    cp -a --parents /etc/protocols /etc/services /etc/nsswitch.conf /stage/ 2>/dev/null || true; \
    chmod 1777 /stage/tmp
FROM scratch
COPY --from=build /stage/ /
COPY component /usr/local/bin/kube-proxy
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
