# An HTTP server image for test workloads: busybox httpd on port 8080 serving /www.
FROM pytest-vcluster.local/busybox:1.35
RUN mkdir -p /www && echo 'hello from pytest-vcluster httpd' > /www/index.html
EXPOSE 8080
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
