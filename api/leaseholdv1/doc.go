// Package leaseholdv1 is the generated gRPC API of Leasehold (leasehold.proto).
// Regenerate it with scripts/genproto.sh; do not edit the .pb.go files.
package leaseholdv1
