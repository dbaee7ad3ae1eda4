#!/bin/sh
# image-check.sh — `make image-check`: build the container image on this
# machine and prove it works, from a bare machine (root; not in make test).
#
#   1. install podman, runc and debootstrap when missing;
#   2. podman settings for machines like this one, in a private file passed
#      with CONTAINERS_CONF (runc, cgroupfs, no default ulimits or pids
#      limit), never by editing /etc;
#   3. the base image docker.io/library/debian:12-slim, made with debootstrap
#      and `podman import` when it is absent (no registry is reachable);
#   4. `make image`;
#   5. the container on SQLite with a Redis on the host and a worker from the
#      same image: /healthz, /readyz, the UI, a change acknowledged by the
#      worker, the non-root user, a clean stop on SIGTERM within 10 s;
#   6. the image size.
set -eu
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-sluice:0.1}
BASE=docker.io/library/debian:12-slim
[ "$(id -u)" -eq 0 ] || { echo "image-check: needs root (it installs packages and runs containers)" >&2; exit 2; }

say() { echo "image-check: $*"; }
fail() { echo "image-check: FAILED: $*" >&2; exit 1; }

# 1. Tools.
missing=""
for p in podman runc debootstrap redis-server curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi

# 2. podman's configuration for this run only.
work=$(mktemp -d /tmp/sluice-image.XXXXXX)
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = []
pids_limit = 0
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$work/containers.conf"
name=sluice-check-$$
redis_pid=""
finish() {
  rc=$?
  podman rm -f -t 0 "$name" "$name-worker" > /dev/null 2>&1 || true
  podman volume rm -f "$name-data" > /dev/null 2>&1 || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
  [ $rc -eq 0 ] || echo "image-check: FAILED (exit $rc)" >&2
  exit $rc
}
trap finish EXIT INT TERM

# 3. The base image.
if ! podman image exists "$BASE"; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  say "making $BASE with debootstrap from $mirror (a few minutes)"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  tar -C "$work/rootfs" -c . | podman import -q - "$BASE" > /dev/null
  rm -rf "$work/rootfs"
fi

# 4. Build.
say "building $IMAGE"
start=$(date +%s)
IMAGE=$IMAGE tools/image.sh > "$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "make image"; }
say "built in $(( $(date +%s) - start ))s"

# 5. Run it: a Redis on the host, the container and a worker on the host network.
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
port=$(free_port)
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no > "$work/redis.log" 2>&1 &
redis_pid=$!
podman volume create "$name-data" > /dev/null
# As the manifests run it: read-only root (podman puts a tmpfs on /tmp), no
# capabilities, no privilege escalation. The health check runs once, below,
# not on podman's timer, which needs systemd.
podman run -d --name "$name" --network=host -v "$name-data:/data" \
  --read-only --cap-drop=ALL --security-opt=no-new-privileges --health-interval=disable \
  -e SLUICE_LISTEN="127.0.0.1:$port" -e SLUICE_REDIS="redis://127.0.0.1:$rport" \
  "$IMAGE" > /dev/null 2>> "$work/podman.log" || { cat "$work/podman.log" >&2; fail "podman run"; }
url="http://127.0.0.1:$port"
i=0
until curl -fsS "$url/healthz" > /dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 100 ] || { podman logs "$name" >&2; fail "/healthz did not answer"; }
  sleep 0.2
done
say "/healthz answers"
podman healthcheck run "$name" > /dev/null || fail "the image's HEALTHCHECK fails"
say "the image's HEALTHCHECK passes"
uid=$(podman exec "$name" id -u)
[ "$uid" = 10001 ] || fail "sluiced runs as uid $uid, not 10001"
say "runs as uid $uid"
token=$(podman exec "$name" sluiced token create --db sqlite:/data/sluice.db --name image-check --scopes admin)
podman run -d --name "$name-worker" --network=host --read-only --cap-drop=ALL \
  --security-opt=no-new-privileges --no-healthcheck --entrypoint /usr/local/bin/sluice-worker "$IMAGE" \
  --queue ingestion --redis "redis://127.0.0.1:$rport" --id image-check-worker > /dev/null \
  2>> "$work/podman.log" || { cat "$work/podman.log" >&2; fail "podman run (worker)"; }
i=0
until curl -fsS "$url/readyz" > /dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 50 ] || { curl -sS "$url/readyz" >&2; fail "/readyz did not answer 200"; }
  sleep 0.2
done
say "/readyz answers 200"
curl -fsS "$url/" | grep -q '<title>.*Sluice' || fail "the UI page is not served"
curl -fsS -o /dev/null "$url/ui/vendor/uPlot.iife.min.js" || fail "the UI's chart library is not served"
say "the UI is served"
# Wait until the worker is live, then change a queue and wait for its ack.
i=0
until curl -fsS -H "Authorization: Bearer $token" "$url/admin/runtime-scaling" | grep -q image-check-worker; do
  i=$((i + 1)); [ $i -lt 50 ] || fail "the worker never reported"
  sleep 0.2
done
answer=$(curl -sS -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"desired_concurrency": 6, "reason": "image-check", "wait_ms": 5000}' "$url/api/v1/scaling/ingestion")
echo "$answer" | grep -q '"acknowledged": *1' && echo "$answer" | grep -q '"complete": *true' ||
  fail "the change was not acknowledged by the worker: $answer"
say "a change was acknowledged by the worker"
start=$(date +%s)
podman stop -t 10 "$name" > /dev/null 2>> "$work/podman.log"
took=$(( $(date +%s) - start ))
code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { podman logs "$name" 2>&1 | tail -n 20 >&2; fail "sluiced exited $code on SIGTERM"; }
[ "$took" -lt 10 ] || fail "stopping took ${took}s"
say "stopped cleanly on SIGTERM in ${took}s"
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
say "passed; image $IMAGE is $((size / 1048576)) MiB"
