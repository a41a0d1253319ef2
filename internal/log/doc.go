// Package log is Sluice's storage engine: one append-only log per
// partition, made of segments, with sparse indexes, crash recovery,
// group-commit durability, retention and (in cleaner*.go) compaction. It
// knows the Kafka record-batch format (magic v2, package log/batch) and
// files; nothing of networking or Kafka APIs.
//
// # Using it
//
// A Manager owns a data directory. The broker opens the partitions it
// hosts with Manager.Open, appends raw record batches with
// Partition.Append (which assigns offsets by rewriting each batch's
// baseOffset in place), waits for durability with Partition.WaitDurable,
// and serves fetches with Partition.Read, whose Regions (file, position,
// length) go to the socket with sendfile. Manager.Close flushes everything
// and leaves a clean-shutdown marker so that the next open skips recovery.
//
// # On-disk layout
//
//	<dir>/
//	  .sluice_cleanshutdown               present only after a clean Manager.Close
//	  recovery-point-offset-checkpoint    text: every partition's recovery point
//	  log-start-offset-checkpoint         text: every partition's log start offset
//	  replication-offset-checkpoint       text: high watermarks of replicated partitions (absent until one is set)
//	  <topic>-<partition>/
//	    00000000000000000000.log          record batches, back to back, as appended
//	    00000000000000000000.index        sparse offset index
//	    00000000000000000000.timeindex    sparse time index
//	    00000000000000000000.txnindex     aborted transactions whose marker is in the segment (if any)
//	    00000000000000004711.log          next segment: name = its base offset
//	    ...
//	    leader-epoch-checkpoint           text: epoch -> start offset
//	    cleaner-offset-checkpoint         text: compaction progress (cleaner.go)
//	  <topic>-<partition>.<hex>-delete/   a removed partition, deleted after file.delete.delay.ms
//
// Deleted segments are first renamed to "<name>.deleted" and removed after
// file.delete.delay.ms; "<name>.cleaned" files are a compaction in progress
// and "<name>.swap" files a finished compaction being swapped in (see
// DESIGN.md).
//
// A .log file is a sequence of v2 record batches exactly as Kafka defines
// them (see package batch); a segment holds offsets [base, next base).
//
// Index files start with a 16-byte header, followed by fixed-size entries
// (all big endian):
//
//	header:     | magic (4B) "SLOX" or "SLTX" | version (1B) = 1 | zero (3B) | base offset (8B) |
//	.index:     | relative offset (4B) | file position (4B) |        one per index.interval.bytes
//	.timeindex: | max timestamp so far (8B) | relative offset (4B) |  when the max timestamp grew
//
// .txnindex files share the header (magic "SLTN") and hold 32-byte
// entries: | producer id (8B) | first offset (8B) | abort marker offset
// (8B) | last stable offset after the abort (8B) |, in marker order (see
// txn.go). They are rewritten whole, atomically.
//
// An offset-index entry points at the start of the batch whose base offset
// is base+relative offset. A time-index entry says that the batches up to
// and including the one holding offset base+relative offset have no
// timestamp above the entry's. Indexes are derived data: recovery rebuilds
// one that fails validation.
//
// Producer-state snapshots, "<20-digit offset>.snapshot", hold the
// idempotent-producer state after every batch below offset (big endian):
//
//	header: | magic "SLPS" (4B) | version (1B) = 1 | zero (3B) | CRC-32C of the rest (4B) | offset (8B) | count (4B) |
//	entry:  | producer id (8B) | epoch (2B) | coordinator epoch (4B) | txn first offset (8B) | batches (1B) |
//	        | per batch: first seq (4B) | last seq (4B) | first offset (8B) | last offset (8B) | max timestamp (8B) |
//
// Checkpoint files are text, like Kafka's: a version line ("0"), a count
// line, then count lines of space-separated fields ("topic partition
// offset", or "epoch startOffset" for the leader-epoch checkpoint). They are
// replaced atomically: write a temp file, fsync, rename, fsync the directory.
package log

import "math"

// On-disk format constants. These are part of the file format and must
// not be changed; a new format gets a new version or magic.
const (
	logSuffix         = ".log"
	indexSuffix       = ".index"
	timeIndexSuffix   = ".timeindex"
	deletedSuffix     = ".deleted"
	cleanedSuffix     = ".cleaned"
	swapSuffix        = ".swap"
	tmpSuffix         = ".tmp"
	segmentNameFormat = "%020d"
	deleteDirSuffix   = "-delete"

	indexHeaderSize  = 16
	indexVersion     = 1
	offsetIndexMagic = "SLOX"
	timeIndexMagic   = "SLTX"
	offsetEntrySize  = 8
	timeEntrySize    = 12
	maxRelOffset     = math.MaxInt32

	cleanShutdownFile = ".sluice_cleanshutdown"
	recoveryPointFile = "recovery-point-offset-checkpoint"
	logStartFile      = "log-start-offset-checkpoint"
	leaderEpochFile   = "leader-epoch-checkpoint"
	highWatermarkFile = "replication-offset-checkpoint"
	checkpointVersion = 0
)
