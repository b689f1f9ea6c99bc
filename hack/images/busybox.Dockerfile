# A shell image for test workloads, as docker-library's busybox image is made: busybox built from
# upstream's source with its defconfig, every applet in /bin. busybox-root.tar
# (hack/_host/e2e_images.busybox_root) holds it with the glibc files it links (dynamically: a static glibc
# cannot load the NSS modules that resolve names) and /etc/nsswitch.conf (files dns).
FROM scratch
ADD busybox-root.tar /
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/tmp", "/root", "/mnt", "/var", "/home", "/opt"]
# as upstream's image: every applet in /bin (/bin/sysctl, /bin/env, ...)
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group && chmod 1777 /tmp
# the PATH of upstream's busybox image
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
