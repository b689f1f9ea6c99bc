# A shell image for test workloads, as docker-library's busybox image is made: busybox built from
# upstream's source with its defconfig (hack/_host/e2e_images.busybox_binary), every applet in /bin.
# Dynamically linked with the glibc of the debootstrap'd tools root (bookworm), whose files it takes:
# names resolve through /etc/nsswitch.conf (files dns); a static glibc cannot load NSS modules.
FROM pytest-vcluster.local/debian-tools:bookworm AS build
COPY busybox /stage/bin/busybox
RUN set -e; mkdir -p /stage/lib/x86_64-linux-gnu /stage/lib64 /stage/etc; \
    for lib in $(ldd /stage/bin/busybox | awk '/=>/ {print $3}'); do cp -L "$lib" /stage/lib/x86_64-linux-gnu/; done; \
    for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 \
               /lib/x86_64-linux-gnu/libresolv.so.2; do [ -e "$lib" ] && cp -L "$lib" /stage/lib/x86_64-linux-gnu/; done; \
    cp -L /lib64/ld-linux-x86-64.so.2 /stage/lib64/; \
    cp -a /etc/services /etc/protocols /stage/etc/; \
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' > /stage/etc/nsswitch.conf
FROM scratch
COPY --from=build /stage/ /
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/tmp", "/etc", "/root", "/mnt", "/var", "/home", "/opt"]
# as upstream's image: every applet in /bin (/bin/sysctl, /bin/env, ...)
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group && chmod 1777 /tmp
# the PATH of upstream's busybox image
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
