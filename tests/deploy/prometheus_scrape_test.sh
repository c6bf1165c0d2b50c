#!/usr/bin/env bash
# File: tests/deploy/prometheus_scrape_test.sh — a real Prometheus scrapes a real segserve.
# Starts build/server/app/segserve on loopback (ports from --port_file, temp data dir)
# and Debian's prometheus on loopback (1 s scrape interval), calls Health with segctl,
# and checks through /api/v1/query that up == 1 and segserve_grpc_requests_total moves;
# then makes the server serve and train something (a 16-image 64 px data set, a 2-epoch
# resnet18 job, two images segmented with the model it made) and runs
# tests/deploy/promql_check.py: every PromQL expression of deploy/grafana/segserve.json
# and of the loaded alert rules is valid and has data (or is an explicit exemption);
# then `promtool check metrics` on the exposition. Measured on 2 cores: 28 s at load ~4
# (13 s of it serving and training), 64-83 s at load ~7 (47-59 s). Every process it
# starts is stopped on exit. Missing tools: prints SKIP and exits 0 (SCRAPE_TEST_STRICT=1: exit 1).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR="${BUILD_DIR:-build}"
SEGSERVE="${SEGSERVE_BIN:-$BUILD_DIR/server/app/segserve}"
SEGCTL="${SEGCTL_BIN:-$BUILD_DIR/client/segctl/segctl}"
start_s=$(date +%s)

skip() {
  echo "prometheus_scrape_test: SKIP: $*"
  [ "${SCRAPE_TEST_STRICT:-0}" = 1 ] && exit 1
  exit 0
}
for t in prometheus promtool curl python3; do
  command -v "$t" >/dev/null || skip "$t not installed (Debian: prometheus, curl, python3)"
done
[ -x "$SEGSERVE" ] || skip "$SEGSERVE not built (scripts/build.sh segserve segctl)"
[ -x "$SEGCTL" ] || skip "$SEGCTL not built (scripts/build.sh segserve segctl)"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "prometheus_scrape_test: FAIL: $*" >&2
  for f in segserve.log prometheus.log; do
    [ -f "$tmp/$f" ] && { echo "--- $f" >&2; tail -15 "$tmp/$f" >&2; }
  done
  exit 1
}

# segserve on free loopback ports, with a tokens file as in production; it writes the
# ports to the port file once serving.
"$SEGCTL" auth new-token --name scrape-test --role viewer --append "$tmp/tokens" \
  >"$tmp/viewer.token" 2>/dev/null || fail "segctl auth new-token"
"$SEGCTL" auth new-token --name scrape-admin --role admin --append "$tmp/tokens" \
  >"$tmp/admin.token" 2>/dev/null || fail "segctl auth new-token --role admin"
# --bootstrap=false: no quick-start data set and training sweep (minutes of CPU); the
# training below is the test's own, small and fixed.
"$SEGSERVE" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --data_dir="$tmp/data" \
  --auth_tokens_file="$tmp/tokens" --port_file="$tmp/ports.json" --drain_seconds=1 \
  --bootstrap=false >"$tmp/segserve.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do [ -s "$tmp/ports.json" ] && break; sleep 0.1; done
[ -s "$tmp/ports.json" ] || fail "segserve wrote no port file in 15 s"
read -r gport mport < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["grpc_port"], d["metrics_port"])' "$tmp/ports.json")

# Prometheus cannot report a port it picked itself: take a free one from the kernel.
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: segserve
    static_configs:
      - targets: ["127.0.0.1:$mport"]
YML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=($!)

query() {  # prints the first sample's value of an instant query, or nothing
  curl -sf --max-time 2 --data-urlencode "query=$1" "http://127.0.0.1:$pport/api/v1/query" 2>/dev/null \
    | python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
wait_for() {  # wait_for SECONDS PYTHON_CONDITION_ON_v QUERY -> prints the value when true
  local deadline=$(( $(date +%s) + $1 )) v
  while [ "$(date +%s)" -lt "$deadline" ]; do
    v=$(query "$3")
    if [ -n "$v" ] && python3 -c "v=float('$v'); exit(0 if ($2) else 1)"; then echo "$v"; return 0; fi
    sleep 0.5
  done
  return 1
}

for _ in 1 2 3; do "$SEGCTL" --server "127.0.0.1:$gport" health >/dev/null || fail "segctl health"; done
q='sum(segserve_grpc_requests_total{job="segserve",method="/grpc.health.v1.Health/Check",code="OK"})'
up=$(wait_for 20 'v == 1' 'up{job="segserve"}') || fail "up{job=\"segserve\"} never became 1 within 20 s"
first=$(wait_for 20 'v >= 3' "$q") || fail "Prometheus saw no Health/Check OK count >= 3 within 20 s (last: '$(query "$q")')"
echo "prometheus_scrape_test: up=$up, Health/Check OK = $first after $(( $(date +%s) - start_s )) s"
for _ in 1 2 3 4 5; do "$SEGCTL" --server "127.0.0.1:$gport" health >/dev/null || fail "segctl health"; done
second=$(wait_for 20 "v >= $first + 5" "$q") || fail "counter did not move by 5 within 20 s (still '$(query "$q")')"
echo "prometheus_scrape_test: counter moved $first -> $second"
# Auth: a call with the token passes, one without is refused and counted.
"$SEGCTL" --server "127.0.0.1:$gport" --token-file "$tmp/viewer.token" models list >/dev/null \
  || fail "segctl models list with a viewer token"
! "$SEGCTL" --server "127.0.0.1:$gport" models list >/dev/null 2>&1 \
  || fail "segctl models list without a token was not refused"
wait_for 20 'v >= 1' 'segserve_auth_failures_total{job="segserve",reason="missing_token"}' >/dev/null \
  || fail "Prometheus saw no segserve_auth_failures_total{reason=\"missing_token\"} >= 1"
echo "prometheus_scrape_test: auth refusal counted in Prometheus"
# The latency histogram is scraped too (the p99 alert depends on it).
wait_for 10 'v > 0' 'sum(segserve_grpc_request_duration_seconds_count{job="segserve"})' >/dev/null \
  || fail "no segserve_grpc_request_duration_seconds_count in Prometheus"
# The alert rules load in a real Prometheus without evaluation errors.
rules_health=$(curl -sf "http://127.0.0.1:$pport/api/v1/rules" | python3 -c 'import json,sys
g = json.load(sys.stdin)["data"]["groups"]
rules = [r for x in g for r in x["rules"]]
bad = [r["name"] for r in rules if r.get("health") == "err"]
print(str(len(rules)) + "," + " ".join(bad))') || fail "GET /api/v1/rules"
[ "${rules_health#*,}" = "" ] || fail "rules with evaluation errors: ${rules_health#*,}"
echo "prometheus_scrape_test: ${rules_health%%,*} alert rules loaded"

# Serve and train something, so that every series the dashboard and the alerts use exists:
# a data-set job, a tiny training job (its epoch/val IoU gauges live only while it runs:
# 2 epochs keep them for seconds, scraped every second), and Segment calls (images,
# batches, queues, domain-shift gauges of the trained model).
admin=("$SEGCTL" --server "127.0.0.1:$gport" --token-file "$tmp/admin.token" --timeout 120)
t_a=$(date +%s)
"${admin[@]}" datasets generate --name tiny --n 16 --size 64 --wait >"$tmp/activity.log" 2>&1 \
  || { cat "$tmp/activity.log" >&2; fail "segctl datasets generate"; }
"${admin[@]}" submit-train --dataset tiny --encoder resnet18 --prune-levels 1 --epochs 2 \
  --batch-size 4 --model-name tiny --wait >>"$tmp/activity.log" 2>&1 \
  || { cat "$tmp/activity.log" >&2; fail "segctl submit-train"; }
"$SEGCTL" synth --out "$tmp/images" --n 2 --size 64 >/dev/null 2>&1 || fail "segctl synth"
"${admin[@]}" segment --model tiny --out "$tmp/masks" "$tmp/images/images" >>"$tmp/activity.log" 2>&1 \
  || { cat "$tmp/activity.log" >&2; fail "segctl segment"; }
wait_for 20 'v >= 2' 'sum(segserve_images_total{job="segserve"})' >/dev/null \
  || fail "Prometheus saw no segserve_images_total >= 2 after segmenting 2 images"
wait_for 20 'v > 0' 'count(segserve_domain_shift_hellinger{job="segserve"})' >/dev/null \
  || fail "Prometheus saw no segserve_domain_shift_hellinger after segmenting with a trained model"
echo "prometheus_scrape_test: served and trained (data set, 2-epoch job, 2 images segmented) in $(( $(date +%s) - t_a )) s"
sleep 2  # two more scrapes: rates over the last samples
python3 tests/deploy/promql_check.py "http://127.0.0.1:$pport" "$start_s" "$(date +%s)" \
  deploy/grafana/segserve.json >"$tmp/promql.txt" 2>&1 || { cat "$tmp/promql.txt" >&2; fail "PromQL of the dashboard or the alert rules"; }
sed 's/^/  /' "$tmp/promql.txt"
# How many scrapes saw a running job's gauges (they live only while it runs): the margin
# the data check on the "Running jobs" panel has.
echo "prometheus_scrape_test: scrapes with segserve_training_epoch: $(query 'sum(count_over_time(segserve_training_epoch{job="segserve"}[5m]))')"

curl -sf "http://127.0.0.1:$mport/metrics" >"$tmp/metrics.txt" || fail "GET /metrics"
if ! promtool check metrics <"$tmp/metrics.txt" >"$tmp/lint.txt" 2>&1; then
  cat "$tmp/lint.txt" >&2
  fail "promtool check metrics"
fi
echo "prometheus_scrape_test: promtool check metrics: clean ($(grep -c '^segserve_' "$tmp/metrics.txt") segserve_ samples)"
echo "prometheus_scrape_test: PASS in $(( $(date +%s) - start_s )) s"
