#!/bin/sh
# run.sh — the local demo behind `make run`: a SQLite database in .run/, a
# private Redis when SLUICE_REDIS is not set, an admin token, and sluiced in
# the foreground. Ctrl-C stops everything it started.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUN=.run
PORT=${SLUICE_PORT:-8080}
DB="sqlite:$RUN/sluice.db"
mkdir -p "$RUN"

redis_pid=""
demo_pids=""
sluiced_pid=""
cleanup() {
  trap - EXIT INT TERM
  # sluiced first (it drains held answers), then the workers, which drain
  # their running jobs on SIGTERM and say bye, then Redis.
  [ -n "$sluiced_pid" ] && kill "$sluiced_pid" 2>/dev/null && { wait "$sluiced_pid" 2>/dev/null || true; }
  for p in $demo_pids; do kill "$p" 2>/dev/null || true; done
  wait $demo_pids 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Redis carries changes to workers (propagation); start a private one on a
# spare port unless the operator pointed us at theirs.
if [ -z "${SLUICE_REDIS:-}" ]; then
  REDIS_PORT=${SLUICE_REDIS_PORT:-6399}
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize no > "$RUN/redis.log" 2>&1 &
  redis_pid=$!
  export SLUICE_REDIS="redis://127.0.0.1:$REDIS_PORT"
fi

"$BUILD/sluiced" migrate --db "$DB" > /dev/null

# Two reference workers per queue, and producers that keep the queues
# moving: 20 jobs every 2 s, 3 % of them failing (so failure rates show), and
# every 40 s or so a burst of 300 that the workers take a while to drain, so
# depth and the charts move. Each queue starts its bursts at another time.
phase=0
for q in ingestion build workflow; do
  for i in 1 2; do
    "$BUILD/sluice-worker" --queue "$q" --redis "$SLUICE_REDIS" --id "$q-demo-$i" \
      2>> "$RUN/workers.log" &
    demo_pids="$demo_pids $!"
  done
  ( tick=$phase
    while :; do
      n=20
      [ $((tick % 20)) -eq 19 ] && n=300
      "$BUILD/sluice-worker" --produce "$n" --queue "$q" --redis "$SLUICE_REDIS" \
        --sleep-ms 150 --fail-ratio 0.03 > /dev/null 2>&1 || true
      tick=$((tick + 1))
      sleep 2
    done ) &
  demo_pids="$demo_pids $!"
  phase=$((phase + 7))
done
TOKEN=$("$BUILD/sluiced" token create --db "$DB" --name "demo-admin" --scopes admin \
        --expires-in 1d 2>/dev/null)

cat <<MSG

  Sluice is starting.
    UI:     http://127.0.0.1:$PORT/
    Token:  $TOKEN      (admin, valid 24 h; shown once)

  Try it:
    export SLUICE_TOKEN=$TOKEN
    curl -s -H "Authorization: Bearer \$SLUICE_TOKEN" http://127.0.0.1:$PORT/api/v1/scaling
    curl -s -X PUT -H "Authorization: Bearer \$SLUICE_TOKEN" \\
         -d '{"desired_concurrency": 8, "reason": "trying sluice"}' \\
         http://127.0.0.1:$PORT/api/v1/scaling/ingestion

  Two demo workers per queue log to $RUN/workers.log; producers keep
  the queues busy. Logs follow as JSON lines. Ctrl-C stops everything.

MSG

# In the background and waited for, so that a SIGTERM to this script (not
# only Ctrl-C to the whole terminal) stops sluiced too.
"$BUILD/sluiced" serve --listen "127.0.0.1:$PORT" --db "$DB" --env local &
sluiced_pid=$!
wait "$sluiced_pid" || true
