# A shell image for test workloads: Debian 13's busybox (1.37, dynamically linked) with the glibc files
# it needs, unpacked from their .debs (hack/_host/e2e_images.busybox_debs) in the debootstrap'd tools
# root.  It resolves names through /etc/nsswitch.conf (files dns): Debian 12's static busybox crashed in
# wget/nslookup on names (a static glibc cannot load NSS modules), and its 1.35 in `wget -T` at all.
FROM pytest-vcluster.local/debian-tools:bookworm AS build
COPY busybox.deb libc6.deb /tmp/
RUN set -e; mkdir -p /x /stage/bin /stage/lib/x86_64-linux-gnu /stage/lib64 /stage/etc; \
    dpkg-deb -x /tmp/busybox.deb /x; dpkg-deb -x /tmp/libc6.deb /x; \
    cp /x/usr/bin/busybox /stage/bin/busybox; \
    L=/x/usr/lib/x86_64-linux-gnu; \
    for lib in $("$L/ld-linux-x86-64.so.2" --library-path "$L" --list /x/usr/bin/busybox | awk '/=>/ && $1 !~ /\// {print $1}'); do \
      cp -L "$L/$lib" /stage/lib/x86_64-linux-gnu/; done; \
    cp -L /x/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /stage/lib64/; \
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
