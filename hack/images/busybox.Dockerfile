# A shell image for test workloads: Debian's static busybox and its applets.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/tmp", "/etc", "/root", "/mnt", "/var", "/home", "/opt"]
RUN ["/bin/busybox", "--install", "-s"]
RUN echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group && chmod 1777 /tmp
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
