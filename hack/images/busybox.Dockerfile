# A shell image for test workloads: Debian's dynamic busybox with the glibc files it links (taken from
# the debootstrap'd tools root).  Debian's static busybox crashed in wget/nslookup on names (static
# glibc cannot load its NSS modules); this one resolves names through /etc/nsswitch.conf (files dns).
FROM pytest-vcluster.local/debian-tools:bookworm AS build
RUN set -e; mkdir -p /stage/bin /stage/etc; cp /bin/busybox /stage/bin/busybox; \
    for lib in $(ldd /bin/busybox | grep -o '/[^ ]*\.so[^ ]*'); do cp -aL --parents "$lib" /stage/; done; \
    cp -a /etc/services /etc/protocols /stage/etc/; \
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' > /stage/etc/nsswitch.conf
FROM scratch
COPY --from=build /stage/ /
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/tmp", "/etc", "/root", "/mnt", "/var", "/home", "/opt"]
RUN ["/bin/busybox", "--install", "-s"]
RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group && chmod 1777 /tmp
# the PATH of upstream's busybox image
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
