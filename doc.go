// Package sluice is the root of the Sluice module: a streaming log broker
// that speaks the Apache Kafka wire protocol. The broker, admin CLI and load
// generator are the sluice command (cmd/sluice); pkg/sluicetest starts a real
// broker inside Go tests. This package holds only repository-shape tests.
package sluice
