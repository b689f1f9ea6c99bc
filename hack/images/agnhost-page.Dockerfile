# kitten / nautilus (test/images/{kitten,nautilus}/Dockerfile): agnhost plus a picture and data.json
# from the Kubernetes module, serving them with test-webserver. AGNHOST: our agnhost image of that module's
# version (2.53 for the host's 1.7 tags, 2.66.1 for the 1.37 suite's 1.8).
ARG AGNHOST=pytest-vcluster.local/agnhost:2.53
FROM ${AGNHOST}
ARG NAME
COPY picture.jpg /${NAME}.jpg
COPY data.json /data.json
CMD ["test-webserver"]
