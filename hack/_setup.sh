# Shared set-up of hack/test and hack/examples (sourced): installs what is missing, brings the host
# cluster up (building it on a fresh machine), loads the current syncer image under the chart's
# default name (for tests that install the chart directly) and points the plugin at the host.
[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"
hack/install-deps
hack/venv
# Virtual control planes `hack/host up` builds (once, cached per version) and serves besides the chart's default
# (docs/kubernetes-versions.md): the oldest minor upstream supports (hack/_host/versions.py HOST_DEFAULT_KUBERNETES);
# VCLUSTER_HOST_KUBERNETES=1.37,1.35 or =all for more.
export VCLUSTER_HOST_KUBERNETES="${VCLUSTER_HOST_KUBERNETES:-1.35}"
hack/host up
hack/syncer-image
export PATH="$(hack/host tools):$PATH"
export VCLUSTER_HOST_KUBECONFIG="$(hack/host kubeconfig)"
# vcluster_host.load_image(name) and the plugin's own syncer image: built with the host's docker
# (from the host's local Python base image; no registry is reachable) and copied into its containerd.
export VCLUSTER_IMAGE_LOADER="$PWD/hack/host load-image"
export DOCKER_HOST="$(hack/host docker-host)"
export VCLUSTER_SYNCER_BASE_IMAGE=pytest-vcluster.local/python:3.11-bookworm
