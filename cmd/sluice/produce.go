package main

// sluice produce: a console producer in the manner of
// kafka-console-producer.sh and `kcat -P`, on kgo. Each stdin line is one
// record.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// producerFlags are the producer settings shared by produce and bench.
type producerFlags struct {
	compression   string
	acks          string
	idempotent    bool
	linger        time.Duration
	batchSize     int
	transactional string
}

func (p *producerFlags) register(fs *flag.FlagSet, withTxn bool) {
	fs.StringVar(&p.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	fs.StringVar(&p.acks, "acks", "all", "all (-1), 1 or 0")
	fs.BoolVar(&p.idempotent, "idempotent", true, "idempotent producer (kgo's default; used only if the broker supports it, and only with --acks all)")
	fs.DurationVar(&p.linger, "linger", 0, "linger before sending a batch (kgo default 0: send as soon as possible)")
	fs.IntVar(&p.batchSize, "batch-size", 0, "maximum batch size in bytes (kgo default 1000012)")
	if withTxn {
		fs.StringVar(&p.transactional, "transactional-id", "", "produce everything in one transaction with this transactional id")
	}
}

// kgoOpts turns the producer flags into kgo options. set tells which flags
// were given explicitly.
func (p *producerFlags) kgoOpts(fs *flag.FlagSet) ([]kgo.Opt, error) {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var opts []kgo.Opt
	codec, err := compressionCodec(p.compression)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	switch p.acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, errUsage{fmt.Sprintf("--acks %q: want all, -1, 1 or 0", p.acks)}
	}
	acksAll := p.acks == "all" || p.acks == "-1"
	switch {
	case p.idempotent && !acksAll && explicit["idempotent"]:
		return nil, errUsage{"--idempotent needs --acks all"}
	case !p.idempotent || !acksAll:
		if p.transactional != "" {
			return nil, errUsage{"--transactional-id needs an idempotent producer (--acks all)"}
		}
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if p.linger > 0 {
		opts = append(opts, kgo.ProducerLinger(p.linger))
	}
	if p.batchSize < 0 {
		return nil, errUsage{"--batch-size must be positive"}
	}
	if p.batchSize > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(p.batchSize)))
	}
	if p.transactional != "" {
		opts = append(opts, kgo.TransactionalID(p.transactional))
	}
	return opts, nil
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, errUsage{fmt.Sprintf("--compression %q: want none, gzip, snappy, lz4 or zstd", name)}
}

// headerFlag collects -H key=value headers in order.
type headerFlag []kgo.RecordHeader

func (h *headerFlag) String() string { return "" }
func (h *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	*h = append(*h, kgo.RecordHeader{Key: k, Value: []byte(val)})
	return nil
}

// maxLineBytes bounds one stdin line (Kafka's default message.max.bytes is
// about 1 MiB; leave room for larger topic settings).
const maxLineBytes = 16 << 20

func runProduce(ctx context.Context, args []string, env cmdEnv) error {
	var cf clientFlags
	var pf producerFlags
	fs := newFlagSet("produce", "produce -t topic [--key-separator sep] [-H key=value]... [-p partition] < lines", env)
	cf.register(fs, false)
	pf.register(fs, true)
	topic := fs.String("t", "", "topic (required)")
	keySep := fs.String("key-separator", "", "split each line into key and value at the first occurrence of this string (default: no key)")
	fs.StringVar(keySep, "K", "", "same as --key-separator")
	partition := fs.Int("p", -1, "produce to this partition (default: by key hash, or sticky without a key)")
	var headers headerFlag
	fs.Var(&headers, "H", "header key=value added to every record, repeatable")
	quiet := fs.Bool("q", false, "do not print the count of produced records on stderr")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errUsage{fmt.Sprintf("unexpected arguments: %v", pos)}
	}
	if *topic == "" {
		return errUsage{"-t topic is required"}
	}
	opts, err := cf.kgoOpts(env)
	if err != nil {
		return err
	}
	popts, err := pf.kgoOpts(fs)
	if err != nil {
		return err
	}
	opts = append(opts, popts...)
	opts = append(opts, kgo.DefaultProduceTopic(*topic), kgo.AllowAutoTopicCreation())
	if *partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if pf.transactional != "" {
		// kgo retries InitProducerId against a broker without it forever;
		// say so instead.
		if err := checkTransactions(ctx, kadm.NewClient(cl)); err != nil {
			return err
		}
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
	}

	var (
		mu       sync.Mutex
		firstErr error
		acked    int64
	)
	promise := func(r *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("produce to %s[%d]: %w", r.Topic, r.Partition, err)
		}
		if err == nil {
			acked++
		}
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	sc := bufio.NewScanner(env.stdin)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	for sc.Scan() {
		if err := failed(); err != nil {
			break
		}
		line := sc.Bytes()
		r := &kgo.Record{Partition: int32(*partition)}
		if *keySep != "" {
			if k, v, ok := strings.Cut(string(line), *keySep); ok {
				r.Key, r.Value = []byte(k), []byte(v)
			} else {
				r.Value = append([]byte(nil), line...)
			}
		} else {
			r.Value = append([]byte(nil), line...)
		}
		if len(headers) > 0 {
			r.Headers = append([]kgo.RecordHeader(nil), headers...)
		}
		cl.Produce(ctx, r, promise) // a canceled ctx fails the record through the promise
		if ctx.Err() != nil {
			break
		}
	}
	scanErr := sc.Err()
	flushErr := cl.Flush(ctx)
	if pf.transactional != "" {
		commit := kgo.TryCommit
		if scanErr != nil || flushErr != nil || failed() != nil {
			commit = kgo.TryAbort
		}
		if err := cl.EndTransaction(ctx, commit); err != nil && failed() == nil {
			return fmt.Errorf("end transaction: %w", err)
		}
	}
	if err := failed(); err != nil {
		return err
	}
	if scanErr != nil {
		return fmt.Errorf("reading stdin: %w", scanErr)
	}
	if flushErr != nil {
		return flushErr
	}
	if !*quiet {
		fmt.Fprintf(env.stderr, "sluice produce: %d records to %s\n", acked, *topic)
	}
	return nil
}

// checkTransactions fails unless every broker advertises the APIs a
// transactional producer needs.
func checkTransactions(ctx context.Context, adm *kadm.Client) error {
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		return err
	}
	for _, v := range vs.Sorted() {
		if v.Err != nil {
			return fmt.Errorf("ApiVersions of broker %d: %w", v.NodeID, v.Err)
		}
		for _, key := range []int16{22, 24, 25, 26, 28} { // InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit
			if _, ok := v.KeyMaxVersion(key); !ok {
				return fmt.Errorf("transactions are not supported by this broker yet: broker %d does not support %s", v.NodeID, kmsg.NameForKey(key))
			}
		}
	}
	return nil
}
