#!/usr/bin/env bash
# Regenerates the Go code for api/leaseholdv1 from every .proto there. The
# generated files are committed, so only run this after changing the proto.
# Needs protoc (Debian: apt-get install -y protobuf-compiler, 3.21) and the
# pinned Go plugins, which it installs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.2
GOBIN="$(go env GOPATH)/bin"
export PATH="$GOBIN:$PATH"

if ! command -v protoc >/dev/null; then
	echo "protoc not found: apt-get install -y protobuf-compiler" >&2
	exit 1
fi
if ! protoc-gen-go --version 2>/dev/null | grep -q "${PROTOC_GEN_GO}"; then
	GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO}"
fi
if ! protoc-gen-go-grpc --version 2>/dev/null | grep -q "${PROTOC_GEN_GO_GRPC#v}"; then
	GOFLAGS= go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC}"
fi

protoc -I api \
	--go_out=api --go_opt=paths=source_relative \
	--go-grpc_out=api --go-grpc_opt=paths=source_relative \
	api/leaseholdv1/*.proto
gofmt -w api/leaseholdv1
