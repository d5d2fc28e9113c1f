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
# store is the bare InmemStore, which the LogCache above changes; and
# TestRaft_HasExistingState fails 7 times in 20 here with upstream's
# unmodified v1.8.0 as well (its new voter misses the 5 s stability window).
skip='^(TestRaft_LogStoreIsMonotonic|TestRaft_HasExistingState)$'
# Root ignores directory permissions, which this upstream test relies on.
[ "$(id -u)" = 0 ] && skip='^(TestRaft_LogStoreIsMonotonic|TestRaft_HasExistingState|TestFileSS_BadPerm)$'
cd "$work"
rc=0
GOFLAGS=-mod=mod go test -count=1 -timeout 20m -skip "$skip" . >test.log 2>&1 || rc=$?
grep -E '^(--- FAIL|FAIL|ok|panic)' test.log || true
[ "$rc" -eq 0 ] || tail -60 test.log
exit "$rc"
