// Package broker wires Sluice together: the Kafka listener and its
// connection loop, request dispatch to one handler file per API key
// (00_produce.go, 01_fetch.go, ...), the fetch purgatory (long polls woken by
// appends), incremental fetch sessions, and the admin HTTP listener with
// Prometheus metrics, /healthz and pprof.
//
// A Broker owns a metadata.Store (the Raft quorum holding topics and
// configs) and a log.Manager (the partition logs). Metadata changes reach the
// partition table through Store.Subscribe, which opens, reconfigures and
// removes partition logs. See DESIGN.md for the goroutine map and lock order.
package broker
