package broker_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestSarama produces keyed records with headers through sarama's async
// producer (acks=all, each codec) and reads every partition back with
// sarama's partition consumers.
func TestSarama(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("sarama", 8))
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	cfg.Consumer.Return.Errors = true

	client, err := sarama.NewClient([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	type sent struct {
		key, value string
		ts         time.Time
	}
	want := map[int32][]sent{}
	codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	const perCodec = 4000
	for ci, codec := range codecs {
		pcfg := *cfg
		pcfg.Producer.Compression = codec
		prod, err := sarama.NewAsyncProducer([]string{b.Addr()}, &pcfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := 0; i < perCodec; i++ {
				n := ci*perCodec + i
				prod.Input() <- &sarama.ProducerMessage{
					Topic:     "sarama",
					Key:       sarama.StringEncoder("k" + strconv.Itoa(n%97)),
					Value:     sarama.StringEncoder(fmt.Sprintf("v%d-%s", n, codec)),
					Headers:   []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(strconv.Itoa(n))}},
					Timestamp: base.Add(time.Duration(n) * time.Millisecond),
				}
			}
		}()
		for i := 0; i < perCodec; i++ {
			select {
			case m := <-prod.Successes():
				k, _ := m.Key.Encode()
				v, _ := m.Value.Encode()
				want[m.Partition] = append(want[m.Partition], sent{string(k), string(v), m.Timestamp})
			case err := <-prod.Errors():
				t.Fatalf("sarama produce (%s): %v", codec, err)
			case <-time.After(time.Minute):
				t.Fatal("sarama produce timed out")
			}
		}
		if err := prod.Close(); err != nil {
			t.Fatal(err)
		}
	}

	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	total := 0
	for p := int32(0); p < 8; p++ {
		pc, err := cons.ConsumePartition("sarama", p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		// Successes of one partition arrive in offset order, so they are the
		// expected order of the log.
		exp := want[p]
		for i := range exp {
			select {
			case m := <-pc.Messages():
				if string(m.Key) != exp[i].key || string(m.Value) != exp[i].value || !m.Timestamp.Equal(exp[i].ts) {
					t.Fatalf("partition %d #%d: got %q=%q@%v want %q=%q@%v", p, i, m.Key, m.Value, m.Timestamp, exp[i].key, exp[i].value, exp[i].ts)
				}
				if len(m.Headers) != 1 || string(m.Headers[0].Key) != "n" {
					t.Fatalf("partition %d #%d: headers %v", p, i, m.Headers)
				}
				if m.Offset != int64(i) {
					t.Fatalf("partition %d #%d at offset %d", p, i, m.Offset)
				}
			case err := <-pc.Errors():
				t.Fatalf("sarama consume: %v", err)
			case <-time.After(time.Minute):
				t.Fatalf("partition %d: timed out after %d of %d", p, i, len(exp))
			}
		}
		total += len(exp)
		pc.AsyncClose()
	}
	if total != len(codecs)*perCodec {
		t.Fatalf("consumed %d", total)
	}

	// Offsets by time through sarama's ListOffsets.
	off, err := client.GetOffset("sarama", 0, sarama.OffsetNewest)
	if err != nil || off != int64(len(want[0])) {
		t.Fatalf("newest offset %d err %v, want %d", off, err, len(want[0]))
	}
}

// TestKafkaGo writes with segmentio/kafka-go's Writer (hash balancer, acks
// all, each codec) and reads each partition with its Reader.
func TestKafkaGo(t *testing.T) {
	b := sluicetest.New(t, sluicetest.Topic("kgo2", 4))
	ctx := testCtx(t, 2*time.Minute)
	codecs := []compress.Compression{0, kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd}
	const perCodec = 2000
	for ci, codec := range codecs {
		w := &kafka.Writer{
			Addr:         kafka.TCP(b.Addr()),
			Topic:        "kgo2",
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			Compression:  codec,
			BatchSize:    500,
			BatchTimeout: 5 * time.Millisecond,
		}
		msgs := make([]kafka.Message, perCodec)
		for i := range msgs {
			n := ci*perCodec + i
			msgs[i] = kafka.Message{Key: []byte("k" + strconv.Itoa(n%31)), Value: []byte("v" + strconv.Itoa(n)),
				Headers: []kafka.Header{{Key: "n", Value: []byte(strconv.Itoa(n))}}}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("kafka-go write (codec %v): %v", codec, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for p := 0; p < 4; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", b.Addr(), "kgo2", p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, Topic: "kgo2", Partition: p, MaxWait: 200 * time.Millisecond})
		lastN := map[string]int{}
		for i := int64(0); i < last; i++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d read %d/%d: %v", p, i, last, err)
			}
			if m.Offset != i {
				t.Fatalf("partition %d: offset %d, want %d", p, m.Offset, i)
			}
			if seen[string(m.Value)] {
				t.Fatalf("duplicate %q", m.Value)
			}
			seen[string(m.Value)] = true
			n, _ := strconv.Atoi(string(m.Headers[0].Value))
			if prev, ok := lastN[string(m.Key)]; ok && n <= prev {
				t.Fatalf("key %s: %d after %d: order not kept", m.Key, n, prev)
			}
			lastN[string(m.Key)] = n
		}
		r.Close()
	}
	if len(seen) != len(codecs)*perCodec {
		t.Fatalf("read %d distinct records, wrote %d", len(seen), len(codecs)*perCodec)
	}
}
