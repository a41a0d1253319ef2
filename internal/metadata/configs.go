package metadata

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ConfigType is a Kafka config value type.
type ConfigType int8

// Kafka's DescribeConfigs config types.
const (
	TypeBoolean  ConfigType = 1
	TypeString   ConfigType = 2
	TypeInt      ConfigType = 3
	TypeShort    ConfigType = 4
	TypeLong     ConfigType = 5
	TypeDouble   ConfigType = 6
	TypeList     ConfigType = 7
	TypeClass    ConfigType = 8
	TypePassword ConfigType = 9
)

// ConfigDef describes one Kafka config key: the single table of topic
// configs (and the broker keys that supply their defaults).
type ConfigDef struct {
	Name string
	Type ConfigType
	// Default is Kafka's default as a string.
	Default string
	// BrokerKey is the broker setting that supplies the default (e.g.
	// retention.ms <- log.retention.ms), "" if none.
	BrokerKey string
	Doc       string
	// Validate checks a raw value's type and range; the error wraps
	// kerr.InvalidConfig and names the key.
	Validate func(value string) error
}

// Config operation codes, as in IncrementalAlterConfigs.
const (
	OpSet      int8 = 0
	OpDelete   int8 = 1
	OpAppend   int8 = 2
	OpSubtract int8 = 3
)

const maxLong = "9223372036854775807"

// topicConfigs is the one table of topic configs, in name order. Defaults,
// types and ranges are Kafka 4.x's (LogConfig / TopicConfig / ServerLogConfigs).
var topicConfigs = []ConfigDef{
	{Name: "cleanup.policy", Type: TypeList, Default: "delete", BrokerKey: "log.cleanup.policy",
		Doc:      "Comma-separated retention policies for old segments: delete (by time or size) and/or compact (keep the latest value per key).",
		Validate: validList("cleanup.policy", "delete", "compact")},
	{Name: "compression.gzip.level", Type: TypeInt, Default: "-1", BrokerKey: "compression.gzip.level",
		Doc:      "Compression level when compression.type is gzip: -1 (codec default) or 1..9.",
		Validate: intOneOfOrRange("compression.gzip.level", []int64{-1}, 1, 9)},
	{Name: "compression.lz4.level", Type: TypeInt, Default: "9", BrokerKey: "compression.lz4.level",
		Doc:      "Compression level when compression.type is lz4: 1..17.",
		Validate: intRange("compression.lz4.level", 1, 17)},
	{Name: "compression.type", Type: TypeString, Default: "producer", BrokerKey: "compression.type",
		Doc:      "Final compression of the topic's data: uncompressed, zstd, lz4, snappy, gzip, or producer (keep the producer's codec).",
		Validate: validString("compression.type", "uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")},
	{Name: "compression.zstd.level", Type: TypeInt, Default: "3", BrokerKey: "compression.zstd.level",
		Doc:      "Compression level when compression.type is zstd: -131072..22.",
		Validate: intRange("compression.zstd.level", -131072, 22)},
	{Name: "delete.retention.ms", Type: TypeLong, Default: "86400000", BrokerKey: "log.cleaner.delete.retention.ms",
		Doc:      "How long delete tombstones are kept on compacted topics.",
		Validate: longAtLeast("delete.retention.ms", 0)},
	{Name: "file.delete.delay.ms", Type: TypeLong, Default: "60000", BrokerKey: "log.segment.delete.delay.ms",
		Doc:      "Time to wait before deleting a file from the filesystem.",
		Validate: longAtLeast("file.delete.delay.ms", 0)},
	{Name: "flush.messages", Type: TypeLong, Default: maxLong, BrokerKey: "log.flush.interval.messages",
		Doc:      "Force an fsync after this many messages (page-cache model, write.caching=true).",
		Validate: longAtLeast("flush.messages", 1)},
	{Name: "flush.ms", Type: TypeLong, Default: maxLong, BrokerKey: "log.flush.interval.ms",
		Doc:      "Force an fsync after this much time (page-cache model, write.caching=true).",
		Validate: longAtLeast("flush.ms", 0)},
	{Name: "follower.replication.throttled.replicas", Type: TypeList, Default: "", BrokerKey: "",
		Doc:      "Replicas whose log replication is throttled on the follower side: partitionId:brokerId,... or *.",
		Validate: throttledReplicas("follower.replication.throttled.replicas")},
	{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", BrokerKey: "log.index.interval.bytes",
		Doc:      "How often (in bytes) an offset index entry is added.",
		Validate: intRange("index.interval.bytes", 0, math.MaxInt32)},
	{Name: "leader.replication.throttled.replicas", Type: TypeList, Default: "", BrokerKey: "",
		Doc:      "Replicas whose log replication is throttled on the leader side: partitionId:brokerId,... or *.",
		Validate: throttledReplicas("leader.replication.throttled.replicas")},
	{Name: "max.compaction.lag.ms", Type: TypeLong, Default: maxLong, BrokerKey: "log.cleaner.max.compaction.lag.ms",
		Doc:      "Maximum time a message stays ineligible for compaction.",
		Validate: longAtLeast("max.compaction.lag.ms", 1)},
	{Name: "max.message.bytes", Type: TypeInt, Default: "1048588", BrokerKey: "message.max.bytes",
		Doc:      "Largest record batch size allowed (after compression).",
		Validate: intRange("max.message.bytes", 0, math.MaxInt32)},
	{Name: "message.timestamp.after.max.ms", Type: TypeLong, Default: "3600000", BrokerKey: "log.message.timestamp.after.max.ms",
		Doc:      "Largest allowed amount by which a CreateTime timestamp may be ahead of the broker's time.",
		Validate: longAtLeast("message.timestamp.after.max.ms", 0)},
	{Name: "message.timestamp.before.max.ms", Type: TypeLong, Default: maxLong, BrokerKey: "log.message.timestamp.before.max.ms",
		Doc:      "Largest allowed amount by which a CreateTime timestamp may be behind the broker's time.",
		Validate: longAtLeast("message.timestamp.before.max.ms", 0)},
	{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", BrokerKey: "log.message.timestamp.type",
		Doc:      "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime).",
		Validate: validString("message.timestamp.type", "CreateTime", "LogAppendTime")},
	{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5", BrokerKey: "log.cleaner.min.cleanable.ratio",
		Doc:      "Minimum ratio of dirty log to total log for a log to be eligible for compaction.",
		Validate: doubleRange("min.cleanable.dirty.ratio", 0, 1)},
	{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", BrokerKey: "log.cleaner.min.compaction.lag.ms",
		Doc:      "Minimum time a message stays uncompacted.",
		Validate: longAtLeast("min.compaction.lag.ms", 0)},
	{Name: "min.insync.replicas", Type: TypeInt, Default: "1", BrokerKey: "min.insync.replicas",
		Doc:      "Minimum number of in-sync replicas for an acks=all write to succeed.",
		Validate: intRange("min.insync.replicas", 1, math.MaxInt32)},
	{Name: "preallocate", Type: TypeBoolean, Default: "false", BrokerKey: "log.preallocate",
		Doc:      "Preallocate segment files on disk when creating a segment.",
		Validate: validBool("preallocate")},
	{Name: "retention.bytes", Type: TypeLong, Default: "-1", BrokerKey: "log.retention.bytes",
		Doc:      "Maximum size of a partition before old segments are discarded (delete policy); -1 = no limit.",
		Validate: longAtLeast("retention.bytes", math.MinInt64)},
	{Name: "retention.ms", Type: TypeLong, Default: "604800000", BrokerKey: "log.retention.ms",
		Doc:      "Maximum age of a segment before it is discarded (delete policy); -1 = no limit.",
		Validate: longAtLeast("retention.ms", -1)},
	{Name: "segment.bytes", Type: TypeInt, Default: "1073741824", BrokerKey: "log.segment.bytes",
		Doc:      "Segment file size; a new segment is rolled when it is reached (minimum 1 MiB).",
		Validate: intRange("segment.bytes", 1024*1024, math.MaxInt32)},
	{Name: "segment.index.bytes", Type: TypeInt, Default: "10485760", BrokerKey: "log.index.size.max.bytes",
		Doc:      "Size of the offset index preallocated per segment.",
		Validate: intRange("segment.index.bytes", 4, math.MaxInt32)},
	{Name: "segment.jitter.ms", Type: TypeLong, Default: "0", BrokerKey: "log.roll.jitter.ms",
		Doc:      "Maximum random jitter subtracted from segment.ms to avoid thundering rolls.",
		Validate: longAtLeast("segment.jitter.ms", 0)},
	{Name: "segment.ms", Type: TypeLong, Default: "604800000", BrokerKey: "log.roll.ms",
		Doc:      "Time after which a segment is rolled even if not full.",
		Validate: longAtLeast("segment.ms", 1)},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", BrokerKey: "unclean.leader.election.enable",
		Doc:      "Allow replicas outside the ISR to become leader as a last resort, at the cost of data loss.",
		Validate: validBool("unclean.leader.election.enable")},
	{Name: "write.caching", Type: TypeBoolean, Default: "false", BrokerKey: "log.write.caching",
		Doc:      "Sluice: true = Kafka's page-cache model (fsync per flush.messages/flush.ms); false = durable group-commit fsync before acks=all is answered.",
		Validate: validBool("write.caching")},
}

var topicConfigIndex = func() map[string]int {
	m := make(map[string]int, len(topicConfigs))
	for i, d := range topicConfigs {
		m[d.Name] = i
	}
	return m
}()

// TopicConfigs is the table of every topic config Sluice knows, in name order.
// The returned slice is a copy.
func TopicConfigs() []ConfigDef { return slices.Clone(topicConfigs) }

// LookupTopicConfig finds a topic config definition by name.
func LookupTopicConfig(name string) (ConfigDef, bool) {
	i, ok := topicConfigIndex[name]
	if !ok {
		return ConfigDef{}, false
	}
	return topicConfigs[i], true
}

// LookupTopicConfigByBrokerKey finds the topic config whose default a broker
// setting supplies (e.g. log.retention.ms -> retention.ms).
func LookupTopicConfigByBrokerKey(brokerKey string) (ConfigDef, bool) {
	if brokerKey == "" {
		return ConfigDef{}, false
	}
	for _, d := range topicConfigs {
		if d.BrokerKey == brokerKey {
			return d, true
		}
	}
	return ConfigDef{}, false
}

// ValidateTopicConfigs checks every key and value of a set of topic
// overrides, and the constraints between them. Errors wrap kerr.InvalidConfig.
func ValidateTopicConfigs(cfgs map[string]string) error {
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic: the first bad key in name order is reported
	for _, k := range keys {
		d, ok := LookupTopicConfig(k)
		if !ok {
			return invalidConfig("unknown topic config %q", k)
		}
		if err := d.Validate(cfgs[k]); err != nil {
			return err
		}
	}
	// Cross-key constraint from Kafka's LogConfig.validateValues.
	minLag, _ := parseLong(effective(cfgs, "min.compaction.lag.ms"))
	maxLag, _ := parseLong(effective(cfgs, "max.compaction.lag.ms"))
	if minLag > maxLag {
		return invalidConfig("conflict topic config setting min.compaction.lag.ms (%d) > max.compaction.lag.ms (%d)", minLag, maxLag)
	}
	return nil
}

func effective(cfgs map[string]string, key string) string {
	if v, ok := cfgs[key]; ok {
		return v
	}
	d, _ := LookupTopicConfig(key)
	return d.Default
}

// applyConfigOps returns a new override map: cur with ops applied (replace:
// ops are the whole new set). Keys and values are validated. APPEND and
// SUBTRACT start from Kafka's default when a key has no override.
func applyConfigOps(cur map[string]string, ops []ConfigOp, replace bool) (map[string]string, error) {
	next := make(map[string]string, len(cur)+len(ops))
	if !replace {
		for k, v := range cur {
			next[k] = v
		}
	}
	for _, op := range ops {
		d, known := LookupTopicConfig(op.Name)
		if !known && op.Op != OpDelete {
			return nil, invalidConfig("unknown topic config %q", op.Name)
		}
		switch op.Op {
		case OpSet:
			if op.Value == nil {
				return nil, invalidConfig("null value for topic config %q", op.Name)
			}
			next[op.Name] = *op.Value
		case OpDelete:
			delete(next, op.Name)
		case OpAppend, OpSubtract:
			if d.Type != TypeList {
				return nil, invalidConfig("cannot APPEND/SUBTRACT topic config %q: its type is not LIST", op.Name)
			}
			if op.Value == nil {
				return nil, invalidConfig("null value for topic config %q", op.Name)
			}
			base, ok := next[op.Name]
			if !ok {
				base = d.Default
			}
			items := splitList(base)
			for _, it := range splitList(*op.Value) {
				if op.Op == OpAppend {
					if !slices.Contains(items, it) {
						items = append(items, it)
					}
				} else {
					items = slices.DeleteFunc(items, func(s string) bool { return s == it })
				}
			}
			next[op.Name] = strings.Join(items, ",")
		default:
			return nil, kerrorf(kerr.InvalidRequest, "unknown config operation %d for %q", op.Op, op.Name)
		}
	}
	if err := ValidateTopicConfigs(next); err != nil {
		return nil, err
	}
	return next, nil
}

// invalidConfig builds an error wrapping kerr.InvalidConfig.
func invalidConfig(format string, args ...any) error {
	return &kafkaError{msg: "metadata: " + fmt.Sprintf(format, args...), code: kerr.InvalidConfig}
}

// kafkaError is a message plus the Kafka error it maps to; errors.Is and
// errors.As see the kerr.Error.
type kafkaError struct {
	msg  string
	code *kerr.Error
}

func (e *kafkaError) Error() string { return e.msg }
func (e *kafkaError) Unwrap() error { return e.code }

func kerrorf(code *kerr.Error, format string, args ...any) error {
	return &kafkaError{msg: "metadata: " + fmt.Sprintf(format, args...), code: code}
}

// KafkaMessage returns the human-readable message of a metadata error, for
// a response's ErrorMessage field ("" if err is nil).
func KafkaMessage(err error) string {
	if err == nil {
		return ""
	}
	var ke *kafkaError
	if errors.As(err, &ke) {
		return strings.TrimPrefix(ke.msg, "metadata: ")
	}
	return err.Error()
}

// ---- validators ----

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseLong(v string) (int64, error) { return strconv.ParseInt(strings.TrimSpace(v), 10, 64) }

func longAtLeast(key string, lo int64) func(string) error {
	return func(v string) error {
		n, err := parseLong(v)
		if err != nil {
			return invalidConfig("invalid value %q for topic config %s: not a long", v, key)
		}
		if n < lo {
			return invalidConfig("invalid value %d for topic config %s: must be at least %d", n, key, lo)
		}
		return nil
	}
}

func intRange(key string, lo, hi int64) func(string) error {
	return intOneOfOrRange(key, nil, lo, hi)
}

func intOneOfOrRange(key string, extra []int64, lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return invalidConfig("invalid value %q for topic config %s: not an int", v, key)
		}
		if slices.Contains(extra, n) {
			return nil
		}
		if n < lo || n > hi {
			if hi == math.MaxInt32 {
				return invalidConfig("invalid value %d for topic config %s: must be at least %d", n, key, lo)
			}
			return invalidConfig("invalid value %d for topic config %s: must be in [%d, %d]", n, key, lo, hi)
		}
		return nil
	}
}

func doubleRange(key string, lo, hi float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) {
			return invalidConfig("invalid value %q for topic config %s: not a double", v, key)
		}
		if f < lo || f > hi {
			return invalidConfig("invalid value %v for topic config %s: must be in [%v, %v]", f, key, lo, hi)
		}
		return nil
	}
}

func validBool(key string) func(string) error {
	return func(v string) error {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "false":
			return nil
		}
		return invalidConfig("invalid value %q for topic config %s: expected true or false", v, key)
	}
}

func validString(key string, allowed ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(allowed, strings.TrimSpace(v)) {
			return nil
		}
		return invalidConfig("invalid value %q for topic config %s: must be one of %s", v, key, strings.Join(allowed, ", "))
	}
}

func validList(key string, allowed ...string) func(string) error {
	return func(v string) error {
		items := splitList(v)
		if len(items) == 0 {
			return invalidConfig("invalid value %q for topic config %s: empty list, expected some of %s", v, key, strings.Join(allowed, ", "))
		}
		for _, it := range items {
			if !slices.Contains(allowed, it) {
				return invalidConfig("invalid value %q for topic config %s: %q is not one of %s", v, key, it, strings.Join(allowed, ", "))
			}
		}
		return nil
	}
}

func throttledReplicas(key string) func(string) error {
	return func(v string) error {
		items := splitList(v)
		if len(items) == 1 && items[0] == "*" {
			return nil
		}
		for _, it := range items {
			p, b, ok := strings.Cut(it, ":")
			_, err1 := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
			_, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return invalidConfig("invalid value %q for topic config %s: expected * or partitionId:brokerId,...", v, key)
			}
		}
		return nil
	}
}
