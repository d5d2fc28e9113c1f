#!/usr/bin/env bash
# CI for the operations pieces (issue 16): installs Debian's prometheus (for
# promtool and the real-Prometheus test) and chromium (for the status page's
# browser test) when missing, then checks and unit-tests the Prometheus rules
# in deploy/prometheus. The Go tests that use the binaries run in `go test
# ./...` (metrics: TestPrometheusScrapesCluster; web: TestLeasesInChromium) and skip, saying why, only if they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "not root: cannot install ${need[*]}" >&2
    exit 1
  fi
fi
# Debian's package may start a Prometheus service on :9090; these checks and
# the tests need none (the test starts its own on a free port).

echo "promtool check rules"
promtool check rules deploy/prometheus/leasehold.rules.yml
echo "promtool check config"
promtool check config deploy/prometheus/prometheus.yml
echo "promtool test rules"
promtool test rules deploy/prometheus/tests/*.test.yml
