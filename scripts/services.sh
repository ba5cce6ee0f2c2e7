#!/usr/bin/env bash
# Throwaway PostgreSQL, S3-protocol server and Prometheus for drover's tests and benches, on
# loopback, in one temporary directory:
#
#   eval "$(bash scripts/services.sh start)"     # starts PostgreSQL and S3; prints export lines
#   bash scripts/services.sh start --postgres    # only PostgreSQL (or --s3 for only the S3 server)
#   DROVER_PROMETHEUS_TARGET=127.0.0.1:8443 DROVER_PROMETHEUS_TOKEN_FILE=secrets/metrics.token \
#     bash scripts/services.sh start --prometheus  # a Prometheus scraping that manager every 1 s
#   bash scripts/services.sh stop "$DROVER_SERVICES_DIR"
#
# PostgreSQL: Debian's postgresql (initdb + pg_ctl on a free port, trust auth on 127.0.0.1 only,
# run as the `postgres` user when started by root, since initdb refuses root).
# S3: OpenStack Swift from Debian (swift-proxy, -account, -container, -object) with its s3api
# middleware and tempauth: a real S3 implementation that verifies SigV4 signatures, presigned URLs
# included, and refuses an expired one (docs/decisions/0023-test-services.md). One device, one
# replica, data under the same temporary directory.
#
# Prometheus: Debian's prometheus, scraping one manager's GET /metrics (DROVER_PROMETHEUS_PATH,
# default /metrics) every second with the bearer token it reads from DROVER_PROMETHEUS_TOKEN_FILE
# (the token never reaches an argv, the config or a log); its TSDB under the temporary directory.
#
# Install what it needs with: apt-get install postgresql swift-proxy swift-account swift-container swift-object prometheus
# (`.ci/run` does). It prints, for `eval`:
#   DROVER_SERVICES_DIR   the directory to pass to `stop`
#   DROVER_TEST_DATABASE_URL  postgres://drover@127.0.0.1:<port>/drover
#   DROVER_TEST_S3_ENDPOINT, DROVER_TEST_S3_REGION, DROVER_TEST_S3_ACCESS_KEY_ID, DROVER_TEST_S3_SECRET_ACCESS_KEY
#   DROVER_TEST_PROMETHEUS_URL  http://127.0.0.1:<port>, its HTTP API (/api/v1/query)
set -euo pipefail

usage() {
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "services.sh: $*" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as `user`: directly when that is who we are, else through runuser (root only;
# it lives in /usr/sbin, which a plain user's PATH may lack).
as_user() {
  local user=$1
  shift
  if [ "$user" = "$(id -un)" ]; then
    "$@"
  else
    "$(command -v runuser || echo /usr/sbin/runuser)" -u "$user" -- "$@"
  fi
}

pg_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && { pg_config --bindir; return 0; }
  return 1
}

# Waits until `check` succeeds, for at most $2 tenths of a second.
wait_for() {
  local check=$1 tenths=$2 i
  for ((i = 0; i < tenths; i++)); do
    if eval "$check" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_postgres() {
  local dir=$1 bindir port owner
  bindir=$(pg_bindir) || die "PostgreSQL is not installed (apt-get install postgresql)"
  port=$(free_port)
  mkdir -p "$dir/postgres"
  owner=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres user to run PostgreSQL as (apt-get install postgresql creates it)"
    owner=postgres
    chown postgres: "$dir/postgres"
    chmod 0711 "$dir" # the postgres user walks into its own directory; nothing else is readable
  fi
  as_user "$owner" "$bindir/initdb" -D "$dir/postgres/data" -U drover --auth=trust --encoding=UTF8 --no-sync >"$dir/postgres/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -5 "$dir/postgres/initdb.log")"
  as_user "$owner" "$bindir/pg_ctl" -D "$dir/postgres/data" -l "$dir/postgres/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $dir/postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null ||
    die "PostgreSQL did not start: $(tail -5 "$dir/postgres/server.log")"
  echo "$bindir" >"$dir/postgres/bindir"
  echo "$owner" >"$dir/postgres/owner"
  as_user "$owner" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U drover drover ||
    die "createdb failed"
  echo "export DROVER_TEST_DATABASE_URL=postgres://drover@127.0.0.1:$port/drover"
}

stop_postgres() {
  local dir=$1
  [ -f "$dir/postgres/bindir" ] || return 0
  local bindir owner
  bindir=$(cat "$dir/postgres/bindir")
  owner=$(cat "$dir/postgres/owner")
  as_user "$owner" "$bindir/pg_ctl" -D "$dir/postgres/data" -m immediate -w stop >/dev/null 2>&1 || true
}

start_s3() {
  local dir=$1 etc proxy_port user ring name port backend_ports=()
  for bin in swift-proxy-server swift-account-server swift-container-server swift-object-server swift-ring-builder; do
    command -v "$bin" >/dev/null 2>&1 || die "$bin is not installed (apt-get install swift-proxy swift-account swift-container swift-object)"
  done
  etc="$dir/s3/etc"
  mkdir -p "$etc" "$dir/s3/srv/d1" "$dir/s3/run" "$dir/s3/log"
  user=$(id -un)
  proxy_port=$(free_port)
  cat >"$etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = drover-test-$RANDOM$RANDOM
[storage-policy:0]
name = only
default = yes
EOF
  for ring in account container object; do
    port=$(free_port)
    backend_ports+=("$port")
    (cd "$etc" &&
      swift-ring-builder "$ring.builder" create 4 1 1 >/dev/null &&
      swift-ring-builder "$ring.builder" add "r1z1-127.0.0.1:$port/d1" 1 >/dev/null &&
      swift-ring-builder "$ring.builder" rebalance >/dev/null) || die "swift-ring-builder failed for the $ring ring"
    cat >"$etc/$ring-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $user
swift_dir = $etc
devices = $dir/s3/srv
mount_check = false
log_name = $ring
[pipeline:main]
pipeline = $ring-server
[app:$ring-server]
use = egg:swift#$ring
EOF
  done
  # s3api before tempauth: S3 requests are authenticated by their signature (tempauth checks it
  # against the user's key); slo and dlo carry multipart uploads. memcache is optional for this
  # path: nothing listens on its address.
  cat >"$etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $proxy_port
workers = 0
user = $user
swift_dir = $etc
log_name = proxy
[pipeline:main]
pipeline = catch_errors healthcheck proxy-logging cache s3api tempauth slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# Swift's defaults (0.5 s to connect to a backend, 10 s for its answer) turn a busy 2-core test
# machine into 503 "Please reduce your request rate"; a test server may wait.
conn_timeout = 5
node_timeout = 60
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:9
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_drover_tester = drover-test-secret .admin
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
  for name in account container object proxy; do
    setsid "swift-$name-server" "$etc/$name-server.conf" >"$dir/s3/log/$name.log" 2>&1 </dev/null &
    echo $! >"$dir/s3/run/$name.pid"
  done
  wait_for "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:$proxy_port/healthcheck\", timeout=1)'" 600 ||
    die "the S3 server did not answer in 60 s: $(tail -5 "$dir/s3/log/proxy.log")"
  # The proxy's healthcheck answers before the account, container and object servers listen; a
  # request in that gap is a 503. Ready means every backend accepts a connection too.
  for port in "${backend_ports[@]}"; do
    wait_for "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $port), 1).close()'" 600 ||
      die "a Swift backend on port $port did not listen in 60 s: $(tail -5 "$dir"/s3/log/*.log)"
  done
  echo "export DROVER_TEST_S3_ENDPOINT=http://127.0.0.1:$proxy_port"
  echo "export DROVER_TEST_S3_REGION=us-east-1"
  echo "export DROVER_TEST_S3_ACCESS_KEY_ID=drover:tester"
  echo "export DROVER_TEST_S3_SECRET_ACCESS_KEY=drover-test-secret"
}

stop_s3() {
  local dir=$1 pidfile pid
  [ -d "$dir/s3/run" ] || return 0
  for pidfile in "$dir"/s3/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pidfile in "$dir"/s3/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    wait_for "! kill -0 $pid" 50 || kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}

start_prometheus() {
  local dir=$1 port target=${DROVER_PROMETHEUS_TARGET:-} token_file=${DROVER_PROMETHEUS_TOKEN_FILE:-} path=${DROVER_PROMETHEUS_PATH:-/metrics}
  command -v prometheus >/dev/null 2>&1 || die "prometheus is not installed (apt-get install prometheus)"
  [[ "$target" =~ ^127\.0\.0\.1:[0-9]+$ ]] || die "DROVER_PROMETHEUS_TARGET must be 127.0.0.1:PORT, the manager to scrape"
  [[ "$path" =~ ^/[A-Za-z0-9/._-]*$ ]] || die "DROVER_PROMETHEUS_PATH must be a URL path"
  [ -r "$token_file" ] || die "DROVER_PROMETHEUS_TOKEN_FILE must name a readable file holding the metrics token"
  mkdir -p "$dir/prometheus/data"
  # Prometheus reads the token itself, at each scrape, from its own 0600 copy.
  install -m 0600 "$token_file" "$dir/prometheus/metrics.token"
  port=$(free_port)
  cat >"$dir/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: drover-manager
    metrics_path: $path
    authorization:
      type: Bearer
      credentials_file: $dir/prometheus/metrics.token
    static_configs:
      - targets: ['$target']
EOF
  setsid prometheus --config.file="$dir/prometheus/prometheus.yml" --storage.tsdb.path="$dir/prometheus/data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1h --log.level=warn \
    >"$dir/prometheus/prometheus.log" 2>&1 </dev/null &
  echo $! >"$dir/prometheus/prometheus.pid"
  wait_for "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:$port/-/ready\", timeout=1)'" 600 ||
    die "Prometheus was not ready in 60 s: $(tail -5 "$dir/prometheus/prometheus.log")"
  echo "export DROVER_TEST_PROMETHEUS_URL=http://127.0.0.1:$port"
}

stop_prometheus() {
  local dir=$1 pid
  [ -f "$dir/prometheus/prometheus.pid" ] || return 0
  pid=$(cat "$dir/prometheus/prometheus.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  wait_for "! kill -0 $pid" 100 || kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
  local dir=$1
  [ -n "$dir" ] || die "stop needs the directory start printed (DROVER_SERVICES_DIR)"
  [ -f "$dir/.drover-services" ] || die "$dir is not a directory services.sh started"
  stop_prometheus "$dir"
  stop_s3 "$dir"
  stop_postgres "$dir"
  rm -rf "$dir"
}

command=${1:-}
[ -n "$command" ] || usage
shift
case "$command" in
  start)
    want_pg=1 want_s3=1 want_prom=0
    if [ $# -gt 0 ]; then
      want_pg=0 want_s3=0
      for arg in "$@"; do
        case "$arg" in
          --postgres) want_pg=1 ;;
          --s3) want_s3=1 ;;
          --prometheus) want_prom=1 ;;
          *) usage ;;
        esac
      done
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/drover-services.XXXXXX")
    touch "$dir/.drover-services"
    # On a failure part-way, stop what was started and leave nothing behind.
    trap 'stop_all "$dir" >/dev/null 2>&1 || true' ERR
    out="export DROVER_SERVICES_DIR=$dir"
    if [ "$want_pg" = 1 ]; then out+=$'\n'$(start_postgres "$dir") || { stop_all "$dir"; exit 1; }; fi
    if [ "$want_s3" = 1 ]; then out+=$'\n'$(start_s3 "$dir") || { stop_all "$dir"; exit 1; }; fi
    if [ "$want_prom" = 1 ]; then out+=$'\n'$(start_prometheus "$dir") || { stop_all "$dir"; exit 1; }; fi
    trap - ERR
    echo "$out"
    ;;
  stop) stop_all "${1:-}" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
