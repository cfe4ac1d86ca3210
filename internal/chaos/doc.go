// Package chaos holds the product's fault-injection and hostile-client tests. It has no
// code of its own: the tests build the real server program (./server), run it as a
// child process on loopback, and drive simulated devices through it (six that speak
// the raw sync protocol from the contract alone, two that run the project's own client,
// sync/client) while they kill the server with SIGKILL, restart and crash its PostgreSQL,
// cut, delay and slice the links through a toxiproxy, and skew the devices' clocks.
// A checker then compares every device's replica, the server's database and an oracle
// computed from every acknowledged op, and prints lost=0 doubled=0 diverged=0.
//
// Short mode (CI, part of go test ./...):
//
//	go test ./internal/chaos/
//
// With the race detector (the server under test is then built with -race too):
//
//	go test -race ./internal/chaos/
//
// Long mode, many iterations with a chosen seed:
//
//	CHAOS_ITERATIONS=200 CHAOS_SEED=42 go test ./internal/chaos/ -run TestChaos -timeout 60m -v
//
// RELIABILITY.md at the root of the repository lists the promises these tests prove.
package chaos
