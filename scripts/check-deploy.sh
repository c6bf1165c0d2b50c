#!/usr/bin/env bash
# File: scripts/check-deploy.sh — static checks of docker/ and deploy/ (no cluster, no
# engine; ~10 s once packages are installed):
#   1. kubectl kustomize renders deploy/overlays/cpu and deploy/overlays/gpu, deploy/kserve
#      (KServe runtime + InferenceService), deploy/grafana (dashboard ConfigMap) and the
#      distributed tree: deploy/overlays/distributed (plain PostgreSQL), .../cloudnativepg,
#      each of them with components/gpu-trainer, and .../cloudnativepg with
#      components/own-disks (no shared volume);
#   2. every rendered object (and deploy/examples/hpa.yaml, the distributed Secret
#      template) validates against the Kubernetes schema (npm kubernetes-models@4 + yaml,
#      tests/deploy/validate.mjs; KEDA kinds with @kubernetes-models/keda; KServe and
#      CloudNativePG kinds against validate.mjs's own schema of the fields we use) and our
#      own policy checks (image, probes, limits, non-root, read-only root fs, ...); the
#      distributed variants also pass tests/deploy/check-distributed.mjs (roles, database
#      URL and Secret, shared RWX data dir, database NetworkPolicy, HPA, KEDA, GPU), and
#      their KEDA query runs against a private PostgreSQL 15 with segserve's job schema;
#   3. promtool check rules / test rules on deploy/prometheus, promtool check config on
#      the compose Prometheus configuration.
# A missing tool skips its part with a "SKIP" line (exit stays 0) unless
# CHECK_DEPLOY_STRICT=1; any failed check exits 1. Installs prometheus (for promtool) via
# apt when running as root and it is missing, and the npm packages with `npm ci`.
set -uo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
failed=0
skipped=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "check-deploy: ok   $*"; }
bad() { echo "check-deploy: FAIL $*"; failed=1; }
skip() { echo "check-deploy: SKIP $*"; skipped=1; }

# --- tools ---------------------------------------------------------------------------
if ! command -v promtool >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "check-deploy: installing Debian package prometheus (promtool)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
    >"$tmp/apt.log" 2>&1 || tail -5 "$tmp/apt.log"
fi

# kustomize: kubectl's built-in one (v4+ needed for `labels`/`patches`; Debian's
# kubernetes-client 1.20 embeds kustomize v2 and cannot render these), else a
# standalone kustomize binary.
kustomize=()
if command -v kubectl >/dev/null; then
  kver=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
  if [ -n "$kver" ] && [ "$kver" -ge 4 ]; then kustomize=(kubectl kustomize); fi
fi
if [ ${#kustomize[@]} -eq 0 ] && command -v kustomize >/dev/null; then kustomize=(kustomize build); fi

# The KEDA trigger's query, run against a private PostgreSQL 15 (Unix socket only, ~1 s)
# holding segserve's job schema (server/scheduler/migrations/postgres/*.sql, as the binary
# applies them) and one job per kind and state: it must parse on that schema and count the
# jobs that need a training slot (queued or running, no sweep/experiment parents) = 4.
check_keda_queries() {
  local queries=$1 pg=/usr/lib/postgresql/15/bin d as=()
  if [ ! -x "$pg/initdb" ] || ! command -v psql >/dev/null; then
    skip "KEDA query on PostgreSQL 15: $pg/initdb or psql missing (Debian postgresql-15)"; return
  fi
  # Not under $tmp (mode 0700, root's): as root the server runs as the user postgres.
  d=$(mktemp -d)
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$d"; as=(runuser -u postgres --); fi
  if ! "${as[@]}" "$pg/initdb" -D "$d/data" -A trust -U segserve >"$tmp/initdb.log" 2>&1 \
     || ! "${as[@]}" "$pg/pg_ctl" -D "$d/data" -l "$d/log" -w -o "-k $d -c listen_addresses=''" start >>"$tmp/initdb.log" 2>&1; then
    tail -5 "$tmp/initdb.log" "$d/log" 2>/dev/null; rm -rf "$d"
    bad "KEDA query: could not start a private PostgreSQL 15"; return
  fi
  local psql=(psql -X -q -v ON_ERROR_STOP=1 -h "$d" -U segserve -d postgres)
  if cat server/scheduler/migrations/postgres/*.sql | "${psql[@]}" --single-transaction -f - >"$tmp/pgq.out" 2>&1 \
     && "${psql[@]}" -f - >>"$tmp/pgq.out" 2>&1 <<'SQL'
INSERT INTO jobs (id, kind, state) VALUES
  ('j1', 'TRAIN', 'QUEUED'), ('j2', 'TRAIN', 'RUNNING'), ('j3', 'ANALYSIS', 'QUEUED'),
  ('j4', 'SYNTH', 'RUNNING'), ('j5', 'SWEEP', 'RUNNING'), ('j6', 'EXPERIMENT', 'QUEUED'),
  ('j7', 'TRAIN', 'SUCCEEDED'), ('j8', 'TRAIN', 'FAILED'), ('j9', 'TRAIN', 'CANCELLED');
SQL
  then
    local q n
    while IFS= read -r q; do
      [ -n "$q" ] || continue
      if n=$("${psql[@]}" -At -c "$q" 2>>"$tmp/pgq.out") && [ "$n" = 4 ]; then
        ok "KEDA query on PostgreSQL 15 + segserve's job schema: $n jobs need a slot (queued or running, no parents)"
      else
        cat "$tmp/pgq.out"; bad "KEDA query answered '${n:-error}', want 4: $q"
      fi
    done <"$queries"
  else
    cat "$tmp/pgq.out"; bad "KEDA query: segserve's job schema did not apply"
  fi
  "${as[@]}" "$pg/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$d"
}

# --- 1+2. render and validate -----------------------------------------------------------
have_node=0
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -d tests/deploy/node_modules/kubernetes-models ] || [ ! -d tests/deploy/node_modules/yaml ] \
      || [ ! -d tests/deploy/node_modules/@kubernetes-models/keda ]; then
    if (cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error) >"$tmp/npm.log" 2>&1; then
      have_node=1
    else
      tail -5 "$tmp/npm.log"
      skip "schema validation: npm ci in tests/deploy failed (offline?)"
    fi
  else
    have_node=1
  fi
else
  skip "schema validation: node/npm not installed (apt-get install nodejs npm)"
fi

inputs=()
extra_inputs=()
if [ ${#kustomize[@]} -eq 0 ]; then
  skip "kustomize rendering: no kubectl with kustomize v4+ and no kustomize binary"
else
  for overlay in cpu gpu; do
    if "${kustomize[@]}" "deploy/overlays/$overlay" >"$tmp/$overlay.yaml" 2>"$tmp/$overlay.err"; then
      ok "${kustomize[*]} deploy/overlays/$overlay ($(grep -c '^kind:' "$tmp/$overlay.yaml") objects)"
      inputs+=("$overlay=$tmp/$overlay.yaml")
    else
      bad "${kustomize[*]} deploy/overlays/$overlay: $(head -3 "$tmp/$overlay.err")"
    fi
  done
  # KServe runtime + InferenceService, and the Grafana dashboard ConfigMap (from
  # deploy/grafana/segserve.json by configMapGenerator: the JSON must round-trip).
  for dir in kserve grafana; do
    if "${kustomize[@]}" "deploy/$dir" >"$tmp/$dir.yaml" 2>"$tmp/$dir.err"; then
      ok "${kustomize[*]} deploy/$dir ($(grep -c '^kind:' "$tmp/$dir.yaml") objects)"
      extra_inputs+=("$dir=$tmp/$dir.yaml")
    else
      bad "${kustomize[*]} deploy/$dir: $(head -3 "$tmp/$dir.err")"
    fi
  done
  # The distributed tree: its two database variants as committed, each with the GPU
  # trainer component, and the CloudNativePG one without a shared volume (components/own-disks)
  # (throw-away kustomizations; kustomize wants relative paths).
  dist_inputs=()
  mkdir -p "$tmp/dist-gpu" "$tmp/dist-cnpg-gpu" "$tmp/dist-cnpg-own"
  rel=$(realpath --relative-to="$tmp/dist-gpu" "$PWD")
  for v in dist-gpu:deploy/overlays/distributed:gpu-trainer \
           dist-cnpg-gpu:deploy/overlays/distributed/cloudnativepg:gpu-trainer \
           dist-cnpg-own:deploy/overlays/distributed/cloudnativepg:own-disks; do
    IFS=: read -r vname vdir vcomponent <<<"$v"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s]\ncomponents: [%s]\n' \
      "$rel/$vdir" "$rel/deploy/overlays/distributed/components/$vcomponent" >"$tmp/$vname/kustomization.yaml"
  done
  for v in dist:deploy/overlays/distributed dist-cnpg:deploy/overlays/distributed/cloudnativepg \
           gpu:dist-gpu:"$tmp/dist-gpu" gpu:dist-cnpg-gpu:"$tmp/dist-cnpg-gpu" \
           own:dist-cnpg-own:"$tmp/dist-cnpg-own"; do
    gpu=""; [ "${v#gpu:}" != "$v" ] && gpu="gpu:" && v=${v#gpu:}
    [ "${v#own:}" != "$v" ] && gpu="own:" && v=${v#own:}
    name=${v%%:*} dir=${v#*:}
    if "${kustomize[@]}" "$dir" >"$tmp/$name.yaml" 2>"$tmp/$name.err"; then
      ok "${kustomize[*]} ${dir/#$tmp\//<tmp>/} ($(grep -c '^kind:' "$tmp/$name.yaml") objects)"
      extra_inputs+=("$name=$tmp/$name.yaml")
      dist_inputs+=("$gpu$name=$tmp/$name.yaml")
    else
      bad "${kustomize[*]} $dir: $(head -3 "$tmp/$name.err")"
    fi
  done
  if [ ${#inputs[@]} -eq 2 ] && [ "$(grep -c 'nvidia.com/gpu: "1"' "$tmp/gpu.yaml")" -ge 2 ] \
      && grep -q 'SEGSERVE_DEVICE: cuda:0' "$tmp/gpu.yaml" && grep -q 'image: .*:cuda' "$tmp/gpu.yaml" \
      && ! grep -q 'nvidia.com/gpu' "$tmp/cpu.yaml"; then
    ok "gpu overlay: nvidia.com/gpu request+limit, cuda:0, CUDA image; cpu overlay without GPU"
  elif [ ${#inputs[@]} -eq 2 ]; then
    bad "gpu overlay lacks nvidia.com/gpu, SEGSERVE_DEVICE=cuda:0 or the :cuda image (or cpu overlay has a GPU)"
  fi
fi
inputs+=("${extra_inputs[@]}" "examples/hpa=deploy/examples/hpa.yaml"
        "distributed/secret=deploy/overlays/distributed/postgres/secret.example.yaml")
if [ "$have_node" = 1 ]; then
  if node tests/deploy/validate.mjs deploy/prometheus/alerts.yml "${inputs[@]}" >"$tmp/validate.out" 2>&1; then
    ok "schema + policy: $(tail -1 "$tmp/validate.out")"
  else
    cat "$tmp/validate.out"
    bad "schema + policy validation"
  fi
  if [ ${#dist_inputs[@]} -gt 0 ]; then
    if node tests/deploy/check-distributed.mjs --queries "$tmp/keda-queries.sql" "${dist_inputs[@]}" >"$tmp/dist.out" 2>&1; then
      ok "distributed: $(tail -1 "$tmp/dist.out")"
      sed -n 's/^note: /check-distributed: note: /p' "$tmp/dist.out"
      check_keda_queries "$tmp/keda-queries.sql"
    else
      cat "$tmp/dist.out"
      bad "distributed: tests/deploy/check-distributed.mjs"
    fi
  fi
  # The compose file and rules parse as YAML (no engine here to run compose itself).
  if (cd tests/deploy && node --input-type=module -e '
      import { parse } from "yaml"; import { readFileSync, existsSync } from "node:fs";
      const c = parse(readFileSync("../../docker/compose.yaml", "utf8"));
      for (const s of ["segserve", "prometheus", "grafana"]) if (!c.services?.[s]) throw new Error("no service " + s);
      if (c.services.segserve.build?.dockerfile !== "docker/Dockerfile") throw new Error("segserve not built from docker/Dockerfile");
      // Every file or folder a service mounts from the tree exists (paths relative to docker/).
      for (const [name, svc] of Object.entries(c.services)) {
        for (const v of svc.volumes ?? []) {
          const src = String(v).split(":")[0];
          if (src.startsWith(".") && src !== "./tokens" && !existsSync("../../docker/" + src)) throw new Error(name + " mounts missing " + src);
        }
      }
      const g = c.services.grafana;
      if (!(g.profiles ?? []).includes("grafana")) throw new Error("grafana is not in the profile grafana");
      const ds = parse(readFileSync("../../deploy/grafana/provisioning/datasources/prometheus.yaml", "utf8"));
      if (!ds.datasources?.some((d) => d.type === "prometheus" && d.url === "http://prometheus:9090")) throw new Error("Grafana data source is not the compose Prometheus");
      const dash = parse(readFileSync("../../deploy/grafana/provisioning/dashboards/segserve.yaml", "utf8"));
      const path = dash.providers?.[0]?.options?.path;
      if (!(g.volumes ?? []).some((v) => String(v).split(":")[1]?.startsWith(path + "/"))) throw new Error("no dashboard mounted under " + path);
    ') 2>"$tmp/compose.err"; then
    ok "docker/compose.yaml parses, builds docker/Dockerfile, has segserve + prometheus + grafana (profile), mounts exist, Grafana provisioned"
  else
    bad "docker/compose.yaml: $(tail -1 "$tmp/compose.err")"
  fi
fi

# --- 3. Prometheus rules and config -------------------------------------------------------
if command -v promtool >/dev/null; then
  if promtool check rules deploy/prometheus/alerts.yml >"$tmp/rules.out" 2>&1; then
    ok "promtool check rules: $(grep -o 'SUCCESS.*' "$tmp/rules.out")"
  else
    cat "$tmp/rules.out"; bad "promtool check rules deploy/prometheus/alerts.yml"
  fi
  if promtool test rules deploy/prometheus/alerts_test.yml >"$tmp/test.out" 2>&1; then
    ok "promtool test rules: $(grep -c '^  - name:' deploy/prometheus/alerts_test.yml) rule test cases pass"
  else
    cat "$tmp/test.out"; bad "promtool test rules deploy/prometheus/alerts_test.yml"
  fi
  sed "s|/etc/prometheus/alerts.yml|$PWD/deploy/prometheus/alerts.yml|" docker/prometheus/prometheus.yml >"$tmp/prometheus.yml"
  if promtool check config "$tmp/prometheus.yml" >"$tmp/config.out" 2>&1; then
    ok "promtool check config docker/prometheus/prometheus.yml"
  else
    cat "$tmp/config.out"; bad "promtool check config docker/prometheus/prometheus.yml"
  fi
else
  skip "promtool checks: promtool not installed (Debian package prometheus)"
fi

# Dockerfiles: the contract docs/deploy.md and the Kubernetes manifests rely on.
for f in docker/Dockerfile docker/Dockerfile.cuda; do
  missing=()
  for want in '^ARG BASE=' '^USER 10001' '^VOLUME \["/var/lib/segserve"\]' '^EXPOSE 50051 9090' \
              '^HEALTHCHECK' 'segctl.*health' '^STOPSIGNAL SIGTERM' '^ENTRYPOINT \["/usr/local/bin/segserve"' \
              'install-deps.sh build' 'install-deps.sh runtime'; do
    grep -Eq "$want" "$f" || missing+=("$want")
  done
  if [ ${#missing[@]} -eq 0 ]; then ok "$f: base ARG, uid 10001, volume, ports, HEALTHCHECK, STOPSIGNAL, entrypoint"
  else bad "$f lacks: ${missing[*]}"; fi
done
grep -q -- '--device=cuda:0' docker/Dockerfile.cuda || bad "docker/Dockerfile.cuda does not default to --device=cuda:0"

echo "check-deploy: done in $(( $(date +%s) - start )) s"
if [ "$failed" = 1 ]; then exit 1; fi
if [ "$skipped" = 1 ] && [ "${CHECK_DEPLOY_STRICT:-0}" = 1 ]; then
  echo "check-deploy: CHECK_DEPLOY_STRICT=1 and some checks were skipped"; exit 1
fi
exit 0
