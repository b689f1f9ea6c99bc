# The base image of the kind node (kind v0.30.0's images/base/Dockerfile), built
# offline: a debootstrap'd Debian bookworm root instead of debian:bookworm-slim +
# apt, containerd/ctr/shim and crictl built from the Go module proxy instead of
# git clones, Debian's runc and CNI plugins.  The node's containerd runs runc
# through runc-wrapper (see hack/runc-wrapper): the machine's capability bounding
# set lacks CAP_SYS_RESOURCE, inside the node as well.
FROM scratch AS build
ADD rootfs.tar /
COPY files/ /
COPY bin/ /usr/local/bin/
COPY containerd-config.toml /etc/containerd/config.toml
RUN set -e \
    && mv /usr/local/bin/runc-wrapper /usr/local/sbin/runc-wrapper \
    && chmod 0755 /usr/local/bin/* /usr/local/sbin/runc-wrapper /kind /kind/bin /kind/bin/* \
    && chmod -R u+w,go-w /kind /etc/containerd /etc/systemd/system /etc/default /etc/sysctl.d \
    && chmod 0644 /etc/crictl.yaml /etc/containerd/config.toml /etc/default/kubelet /etc/sysctl.d/* \
       /etc/systemd/system/*.service /etc/systemd/system/*.slice /etc/systemd/system/kubelet.service.d/* \
    # no fuse-overlayfs snapshotter here (only used rootless)
    && rm -f /etc/systemd/system/containerd-fuse-overlayfs.service \
    # systemd may not lower a unit's oom_score_adj without CAP_SYS_RESOURCE: the unit would not start
    && sed -i '/^OOMScoreAdjust=/d' /etc/systemd/system/containerd.service \
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* \
    && rm -f /etc/systemd/system/*.wants/* \
    && rm -f /lib/systemd/system/local-fs.target.wants/* \
    && rm -f /lib/systemd/system/sockets.target.wants/*udev* \
    && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \
    && rm -f /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && ln -sf "$(command -v systemd || echo /lib/systemd/systemd)" /sbin/init \
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
    && systemctl mask systemd-binfmt.service \
    && mkdir -p /etc/kubernetes/manifests /opt/cni/bin \
    && for p in host-local loopback ptp portmap bridge; do cp /usr/lib/cni/$p /opt/cni/bin/; done \
    && ctr oci spec \
       | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
       | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
    && containerd --version && runc --version && crictl --version

# squash to one layer, as kind does
FROM scratch
COPY --from=build / /
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
