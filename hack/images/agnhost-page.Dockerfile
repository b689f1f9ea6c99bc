# kitten / nautilus (test/images/{kitten,nautilus}/Dockerfile): agnhost plus a picture and data.json
# from the Kubernetes module, serving them with test-webserver.
FROM pytest-vcluster.local/agnhost:2.53
ARG NAME
COPY picture.jpg /${NAME}.jpg
COPY data.json /data.json
CMD ["test-webserver"]
