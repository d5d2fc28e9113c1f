#!/usr/bin/env bash
# Runs every fuzz target in the module for a bounded time each and fails on
# the first crash. Targets are discovered per package with
# `go test -list 'Fuzz.*'`, so a new target is picked up without editing this.
#
#   FUZZTIME=10s scripts/fuzz.sh            # every package
#   FUZZTIME=1m  scripts/fuzz.sh ./internal/fsm/...  # some packages
#
# A crasher is written by `go test -fuzz` to the package's
# testdata/fuzz/<Target>/ directory: fix the bug in the owning package and
# commit that input with the fix, so plain `go test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
	pkgs=(./...)
fi
failed=0
ran=0
# files counts the inputs in a corpus directory (0 when it does not exist).
files() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
for pkg in $(go list "${pkgs[@]}"); do
	targets=$(go test -list 'Fuzz.*' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		ran=$((ran + 1))
		echo "== $pkg $t ($fuzztime)"
		dir="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$t"
		before=$(files "$dir")
		# A failure that writes no new input to testdata is the fuzz engine
		# itself timing out (it reports "context deadline exceeded" on a
		# loaded machine), not a crash of our code: try again, up to 3 times.
		ok=0
		for attempt in 1 2 3; do
			# -parallel 1: the machine is shared; -run '^$' skips the unit tests.
			if go test "$pkg" -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -parallel 1; then
				ok=1
				break
			fi
			if [ "$(files "$dir")" -gt "$before" ]; then
				break # a real crasher was written
			fi
			echo "-- $pkg $t: the fuzz engine failed without a crasher (attempt $attempt); retrying"
		done
		if [ "$ok" -eq 0 ]; then
			echo "!! $pkg $t crashed: see $dir" >&2
			failed=$((failed + 1))
		fi
	done
done
echo "fuzz: $ran targets, $failed failed"
[ "$failed" -eq 0 ]
