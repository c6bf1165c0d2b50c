#!/usr/bin/env bash
# File: tests/deploy/sync-prometheusrule.sh — writes deploy/base/prometheusrule.yaml from
# deploy/prometheus/alerts.yml (the one source of the alert rules), so prometheus-operator
# and plain Prometheus (compose, promtool) run the same rules. scripts/check-deploy.sh
# fails when the two differ.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=deploy/base/prometheusrule.yaml
{
  echo "# GENERATED from deploy/prometheus/alerts.yml by tests/deploy/sync-prometheusrule.sh;"
  echo "# edit that file, then rerun the script. Needs the prometheus-operator CRDs."
  echo "apiVersion: monitoring.coreos.com/v1"
  echo "kind: PrometheusRule"
  echo "metadata:"
  echo "  name: segserve"
  echo "  labels:"
  echo "    release: kube-prometheus-stack"
  echo "spec:"
  grep -v '^#' deploy/prometheus/alerts.yml | sed -e 's/^\(.\)/  \1/'
} >"$out"
echo "wrote $out"
