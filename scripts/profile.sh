#!/bin/sh
# profile.sh: profile the replicated write path on a 3-node loopback cluster
# (docs/performance.md). Builds the e2e benchmarks, runs one-client and
# 100-caller unary writes for each log store with CPU, block and mutex
# profiles, prints each profile's top entries and the CPU share of the main
# parts of a write.
#
#	scripts/profile.sh [OUTDIR]        (default /tmp/leasehold-profile)
#
# STORES (default "bolt wal") and N1/NSAT (ops per run) can be overridden.
set -eu
out=${1:-/tmp/leasehold-profile}
stores=${STORES:-bolt wal}
n1=${N1:-2000}
nsat=${NSAT:-30000}
mkdir -p "$out"
cd "$(dirname "$0")/.."
go test -c -o "$out/e2e.test" ./e2e

breakdown() { # BINARY PROFILE
	for part in \
		"fdatasync:syscall.Fdatasync" \
		"log store StoreLogs (incl. fsync):walstore.*StoreLogs|bbolt.*Commit" \
		"raft loops (incl. log write):raft.\(\*Raft\).(leaderLoop|runFollower|processRPC|replicate|pipeline|heartbeat)" \
		"raft transport (msgpack, TCP):NetworkTransport|netPipeline|go-msgpack" \
		"FSM apply:stateMachine.*ApplyBatch" \
		"admission queue:leasehold/admission" \
		"gRPC server incl. handlers:grpc.\(\*Server\)" \
		"client side (load generator):e2e.benchUnary|leasehold/client|http2Client" \
		"GC:gcBgMarkWorker|gcDrain|bgsweep|scavenge" \
		"scheduler:runtime.schedule|findRunnable|park_m"; do
		name=${part%%:*}
		re=${part#*:}
		v=$(go tool pprof -top -cum -nodecount=1 -focus "$re" "$1" "$2" 2>/dev/null | awk '/flat%/{getline; print $5; exit}')
		echo "  $name: ${v:-0%}"
	done
}

for st in $stores; do
	for bench in 'OneClient$' 'OneClientSaturated'; do
		tag=$st-$(echo "$bench" | tr -dc 'A-Za-z')
		n=$n1
		[ "$bench" = OneClientSaturated ] && n=$nsat
		echo "== store=$st bench=$bench"
		LEASEHOLD_BENCH_STORE=$st "$out/e2e.test" -test.run '^$' -test.bench "$bench" -test.benchtime "${n}x" \
			-test.cpuprofile "$out/cpu-$tag.out" -test.blockprofile "$out/block-$tag.out" \
			-test.mutexprofile "$out/mutex-$tag.out" | grep Benchmark
		for p in cpu block mutex; do
			echo "-- $p profile, top entries"
			go tool pprof -top -nodecount=12 "$out/e2e.test" "$out/$p-$tag.out" 2>/dev/null | sed -n '/flat%/,$p'
		done
		echo "-- CPU share by part"
		breakdown "$out/e2e.test" "$out/cpu-$tag.out"
	done
done
