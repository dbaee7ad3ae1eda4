#!/bin/sh
# image.sh — `make image`: build the container image from deploy/Dockerfile
# with podman, or docker when podman is absent.
#
#   IMAGE=sluice:0.1   the tag
#   CA_BUNDLE=FILE     a CA bundle for the build stage's apt and npm (behind a
#                      TLS-inspecting proxy); default: the host's bundle. It is
#                      passed as a build secret: used while building, never
#                      stored in a layer of the image.
#   CONTAINERS_CONF    podman's configuration (image-check writes one)
set -eu
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-sluice:0.1}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -r "$CA_BUNDLE" ] || { echo "image: CA bundle $CA_BUNDLE is not readable (set CA_BUNDLE)" >&2; exit 2; }

if command -v podman > /dev/null 2>&1; then
  # --pull=never: the base image must be local (image-check makes one when no
  # registry is reachable); --network=host: the build stage reaches apt and
  # npm the way the host does.
  # --format docker: the OCI format has no HEALTHCHECK and podman drops it.
  exec podman build --pull=never --network=host --format docker --secret "id=ca,src=$CA_BUNDLE" \
       -t "$IMAGE" -f deploy/Dockerfile .
elif command -v docker > /dev/null 2>&1; then
  DOCKER_BUILDKIT=1 exec docker build --network=host --secret "id=ca,src=$CA_BUNDLE" \
       -t "$IMAGE" -f deploy/Dockerfile .
fi
echo "image: neither podman nor docker is installed (apt-get install podman runc, or run make image-check as root)" >&2
exit 1
