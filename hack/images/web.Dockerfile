# Stand-in for the httpd and nginx images (upstream's and e2e-test-images'): busybox httpd on port 80
# serving the document root of the real image, with the real image's default page; SIGTERM stops it
# at once, as the real servers do.
FROM pytest-vcluster.local/busybox:1.35
ARG DOCROOT
ARG PAGE
ENV DOCROOT=${DOCROOT}
RUN mkdir -p "${DOCROOT}" && printf '%s\n' "${PAGE}" > "${DOCROOT}/index.html" \
    && printf '#!/bin/sh\nhttpd -f -v -p 80 -h "$DOCROOT" &\ntrap '"'"'kill $! 2>/dev/null; exit 0'"'"' TERM INT\nwait\n' \
       > /usr/local/bin/web-foreground \
    && chmod 0755 /usr/local/bin/web-foreground
EXPOSE 80
CMD ["/usr/local/bin/web-foreground"]
