#!/usr/bin/env bash
# Runs hashicorp/raft's own test suite (v1.8.0, from the module proxy)
# against Leasehold's fork in third_party/hashicorp-raft, with the test
# clusters' log stores behind the fork's LogCache, so that every
# MakeCluster test replicates through the staged path (the leader sends a
# batch while it writes it; see third_party/hashicorp-raft/FORK.md).
# Tests that build a Raft by hand keep the unstaged path. Takes ~3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.8.0
upstream=$(go mod download -json "github.com/hashicorp/raft@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$upstream" ] || { echo "cannot download hashicorp/raft $version"; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r third_party/hashicorp-raft/. "$work/"
cp "$upstream"/*_test.go "$work/"
chmod -R u+w "$work"
# The staged path: the log store each test node gets goes behind LogCache
# (not for commit-tracking stores, whose own methods the tests call).
orig='		raft, err := NewRaft(peerConf, c.fsms[i], logs, store, snap, trans)'
grep -qF "$orig" "$work/testing.go" || { echo "testing.go changed: update $0"; exit 1; }
python3 - "$work/testing.go" "$orig" <<'PY'
import sys
p, orig = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace(orig, '''		if !opts.CommitTrackingLogs {
			cached, err := NewLogCache(64, logs)
			if err != nil {
				t.Fatalf("log cache: %v", err)
			}
			logs = cached
		}
''' + orig, 1)
open(p, 'w').write(s)
PY
# Left out: TestRaft_LogStoreIsMonotonic asserts that a test node's log
# store is the bare InmemStore, which the LogCache above changes.
skip='^TestRaft_LogStoreIsMonotonic$'
# Root ignores directory permissions, which this upstream test relies on.
[ "$(id -u)" = 0 ] && skip='^(TestRaft_LogStoreIsMonotonic|TestFileSS_BadPerm)$'
cd "$work"
rc=0
GOFLAGS=-mod=mod go test -count=1 -timeout 20m -skip "$skip" . >test.log 2>&1 || rc=$?
grep -E '^(--- FAIL|FAIL|ok|panic)' test.log || true
[ "$rc" -eq 0 ] && exit 0
# Several upstream tests are timing-bound and fail now and then on a loaded
# 2-core machine with unmodified v1.8.0 too (measured here, 15 runs each:
# TestNetworkTransport_AppendEntriesPipeline_CloseStreams 5 failures,
# TestRaft_ProtocolVersion_Upgrade_2_3 4, TestRaft_HasExistingState 7 of
# 20; the fork's rates were the same). A failed test is run again, alone,
# up to 4 times; the suite fails if one fails every time, or if the run
# failed without naming a test (a panic or a timeout).
failed=$(sed -n 's/^--- FAIL: \([^ ]*\) .*/\1/p' test.log | sed 's#/.*##' | sort -u)
if [ -z "$failed" ]; then tail -60 test.log; exit "$rc"; fi
for t in $failed; do
  ok=0
  for try in 1 2 3 4; do
    if GOFLAGS=-mod=mod go test -count=1 -timeout 5m -run "^$t\$" . >retry.log 2>&1; then
      echo "$t: failed, then passed on retry $try (a known-flaky upstream test?)"
      ok=1
      break
    fi
  done
  if [ "$ok" = 0 ]; then
    echo "$t: failed 5 times in a row"
    tail -60 retry.log
    exit 1
  fi
done
exit 0
