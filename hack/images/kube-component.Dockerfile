# kube-apiserver / kube-controller-manager built from k8s.io/kubernetes at the
# same version as the upstream image of the same name, at the same path
# (/usr/local/bin/<name>); like upstream, the pod spec names the command.
FROM scratch
ARG NAME
COPY component /usr/local/bin/${NAME}
ENV PATH=/usr/local/bin
