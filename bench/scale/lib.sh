# File: bench/scale/lib.sh — sourced by the bench/scale scripts. A private PostgreSQL 15
# as docs TOOLING.md and tests/testing/postgres_server.cc start one (initdb into a temp dir,
# a Unix socket in it, no TCP, no systemd; as root through the `postgres` user), but with
# the server's default durability (fsync and synchronous_commit on), so its commits cost
# what a production database's would on this disk, like SQLite's synchronous=FULL.
#   pg_start   sets PG_DIR and PG_CONNINFO ("host=$PG_DIR user=segserve", no dbname)
#   pg_createdb NAME
#   pg_stop
# and segserve replicas on loopback (port 0, a port file each):
#   replica_start NAME DATA_DIR [segserve flags...]   sets REPLICA_PID[NAME], REPLICA_ADDR[NAME]
#   replica_stop NAME;  replicas_stop (all of them)
#   now_s   seconds since the epoch, nanosecond resolution
#   bench_header   prints the machine, the time and the load average (every result says them)
#   pg_describe    prints the private PostgreSQL's version and durability
PG_BIN=${SEGSERVE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_DIR=""
PG_CONNINFO=""
pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg_start() {
  PG_DIR=$(mktemp -d /tmp/segserve_bench_pg_XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U segserve -E UTF8 --locale=C >/dev/null
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
    -o "-k $PG_DIR -c listen_addresses=''" start >/dev/null
  PG_CONNINFO="host=$PG_DIR user=segserve"
}
pg_createdb() {
  "$PG_BIN/psql" -q -h "$PG_DIR" -U segserve -d postgres -c "CREATE DATABASE $1" >/dev/null
}
pg_stop() {
  if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
  fi
  [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
  PG_DIR=""
}

declare -A REPLICA_PID REPLICA_ADDR
SEGSERVE=""  # the segserve binary; set by the caller
replica_start() {
  local name=$1 dir=$2
  shift 2
  local ports="$dir/ports-$name.json"
  rm -f "$ports"
  "$SEGSERVE" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$dir" \
    --port_file="$ports" --bootstrap=false --auth_disabled --drain_seconds=1 "$@" \
    2>"$dir/log-$name.txt" &
  REPLICA_PID[$name]=$!
  for _ in $(seq 600); do [ -s "$ports" ] && break; sleep 0.05; done
  [ -s "$ports" ] || { echo "replica $name did not start:" >&2; cat "$dir/log-$name.txt" >&2; return 1; }
  REPLICA_ADDR[$name]="127.0.0.1:$(sed -n 's/.*"grpc_port":\([0-9]*\).*/\1/p' "$ports")"
}
replica_stop() {
  local pid=${REPLICA_PID[$1]:-}
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  unset "REPLICA_PID[$1]"
}
replicas_stop() {
  local name
  for name in "${!REPLICA_PID[@]}"; do replica_stop "$name"; done
}
now_s() { date +%s.%N; }

bench_header() {
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%FT%TZ)"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}
pg_describe() {
  echo "PostgreSQL: $("$PG_BIN/postgres" --version), fsync=on synchronous_commit=on, Unix socket"
}
