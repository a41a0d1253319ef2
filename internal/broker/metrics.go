package broker

import (
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the broker's Prometheus metrics, on a registry of its own so
// that several brokers in one process (tests) do not collide.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	bytesIn      prometheus.Counter
	bytesOut     prometheus.Counter
	recordsIn    prometheus.Counter
	fetchBytes   prometheus.Counter
	connections  prometheus.Gauge
	connRejected prometheus.Counter
	badFrames    prometheus.Counter
	panics       prometheus.Counter
	fetchParked  prometheus.Gauge
	// isrShrinks and isrExpands count the ISR changes this broker made as
	// a partition leader (Kafka's IsrShrinksPerSec, IsrExpandsPerSec).
	isrShrinks prometheus.Counter
	isrExpands prometheus.Counter
	// perAPI caches the request counter and latency histogram of each API
	// key, so observing a request does not hash its label.
	perAPI [kmsg.MaxKey + 1]atomic.Pointer[apiMetrics]
}

// apiMetrics are one API's children of the per-API metric vectors.
type apiMetrics struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func newMetrics(b *Broker) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_requests_total", Help: "Requests handled, by API."}, []string{"api"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_request_duration_seconds", Help: "Time from reading a request to sending its response, by API.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18)}, []string{"api"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_produce_bytes_total", Help: "Record-batch bytes received by Produce."})
	m.recordsIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_produce_records_total", Help: "Records appended by Produce."})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_response_bytes_total", Help: "Response bytes sent, all APIs."})
	m.fetchBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_fetch_bytes_total", Help: "Record-batch bytes sent by Fetch."})
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_connections", Help: "Open client connections."})
	m.connRejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_connections_rejected_total", Help: "Connections closed at accept because of max.connections."})
	m.badFrames = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_bad_requests_total", Help: "Connections closed for a malformed, oversized or unsupported request."})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_handler_panics_total", Help: "Panics recovered in request handling (each closed its connection)."})
	m.fetchParked = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_fetch_purgatory_size", Help: "Fetches parked waiting for data."})
	m.isrShrinks = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_isr_shrinks_total", Help: "ISR shrinks this broker made as a partition leader (Kafka's IsrShrinksPerSec)."})
	m.isrExpands = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_isr_expands_total", Help: "ISR expansions this broker made as a partition leader (Kafka's IsrExpandsPerSec)."})
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.bytesIn, m.recordsIn, m.bytesOut, m.fetchBytes, m.connections, m.connRejected, m.badFrames, m.panics, m.fetchParked, m.isrShrinks, m.isrExpands} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_sendfile_bytes_total", Help: "Fetch bytes sent with sendfile(2)."}, func() float64 { return float64(b.stats.SendfileBytes.Load()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_copied_bytes_total", Help: "Fetch bytes copied through user space (TLS or forced copy)."}, func() float64 { return float64(b.stats.CopiedBytes.Load()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_fetch_sessions", Help: "Incremental fetch sessions cached."}, func() float64 { return float64(b.sessions.len()) }))
	f(partitionCollector{b})
	f(replicationCollector{b})
	return m
}

// onISRChange counts an ISR change accepted by the controller for a
// partition this broker leads (replica.Config.OnISRChange): a member
// removed is a shrink, a member added an expansion.
func (m *metrics) onISRChange(_ string, _ int32, oldISR, newISR []int32) {
	if slices.ContainsFunc(oldISR, func(id int32) bool { return !slices.Contains(newISR, id) }) {
		m.isrShrinks.Inc()
	}
	if slices.ContainsFunc(newISR, func(id int32) bool { return !slices.Contains(oldISR, id) }) {
		m.isrExpands.Inc()
	}
}

// replicationCollector reports Kafka's replication health gauges
// (ReplicaManager's UnderReplicatedPartitions, UnderMinIsrPartitionCount,
// AtMinIsrPartitionCount, LeaderCount, PartitionCount; the controller's
// ActiveControllerCount, OfflinePartitionsCount, FencedBrokerCount),
// computed at scrape time from this node's committed metadata.
type replicationCollector struct{ b *Broker }

var (
	descUnderReplicated = prometheus.NewDesc("sluice_under_replicated_partitions", "Partitions this broker leads whose ISR is smaller than the replica set.", nil, nil)
	descUnderMinISR     = prometheus.NewDesc("sluice_under_min_isr_partitions", "Partitions this broker leads whose ISR is smaller than min.insync.replicas.", nil, nil)
	descAtMinISR        = prometheus.NewDesc("sluice_at_min_isr_partitions", "Partitions this broker leads whose ISR size equals min.insync.replicas.", nil, nil)
	descLeaderParts     = prometheus.NewDesc("sluice_leader_partitions", "Partitions this broker leads.", nil, nil)
	descHostedParts     = prometheus.NewDesc("sluice_partitions", "Partition replicas assigned to this broker.", nil, nil)
	descOffline         = prometheus.NewDesc("sluice_offline_partitions", "Partitions without a leader (reported by the active controller; 0 elsewhere).", nil, nil)
	descActiveCtrl      = prometheus.NewDesc("sluice_active_controller", "1 on the active controller of the metadata quorum, else 0.", nil, nil)
	descFenced          = prometheus.NewDesc("sluice_fenced_brokers", "Registered brokers that are fenced (reported by the active controller; 0 elsewhere).", nil, nil)
	replicationDsc      = []*prometheus.Desc{descUnderReplicated, descUnderMinISR, descAtMinISR, descLeaderParts, descHostedParts, descOffline, descActiveCtrl, descFenced}
)

func (c replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range replicationDsc {
		ch <- d
	}
}

func (c replicationCollector) Collect(ch chan<- prometheus.Metric) {
	meta := c.b.meta
	if meta == nil {
		return
	}
	self := c.b.cfg.NodeID
	controller := meta.IsController()
	var under, underMin, atMin, leading, hosted, offline, fenced int
	for _, t := range meta.Topics() {
		minISR := -1 // computed once per topic, if this broker leads one of its partitions
		for _, p := range t.Partitions {
			if controller && p.Leader < 0 {
				offline++
			}
			if slices.Contains(p.Replicas, self) {
				hosted++
			}
			if p.Leader != self {
				continue
			}
			leading++
			if len(p.ISR) < len(p.Replicas) {
				under++
			}
			if minISR < 0 {
				minISR = c.b.minInsync(t.Configs)
			}
			switch {
			case len(p.ISR) < minISR:
				underMin++
			case len(p.ISR) == minISR:
				atMin++
			}
		}
	}
	active := 0.0
	if controller {
		active = 1
		for _, br := range meta.Brokers() {
			if br.Fenced {
				fenced++
			}
		}
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(descUnderReplicated, float64(under))
	g(descUnderMinISR, float64(underMin))
	g(descAtMinISR, float64(atMin))
	g(descLeaderParts, float64(leading))
	g(descHostedParts, float64(hosted))
	g(descOffline, float64(offline))
	g(descActiveCtrl, active)
	g(descFenced, float64(fenced))
}

func (m *metrics) observe(p *pending) {
	am := m.forAPI(p.hdr.Key, p.api)
	am.requests.Inc()
	am.latency.Observe(time.Since(p.start).Seconds())
}

// forAPI returns the cached per-API metrics of key, creating them (and
// their series) on the API's first request.
func (m *metrics) forAPI(key int16, api string) *apiMetrics {
	if key < 0 || int(key) >= len(m.perAPI) {
		return &apiMetrics{requests: m.requests.WithLabelValues(api), latency: m.latency.WithLabelValues(api)}
	}
	slot := &m.perAPI[key]
	if am := slot.Load(); am != nil {
		return am
	}
	am := &apiMetrics{requests: m.requests.WithLabelValues(api), latency: m.latency.WithLabelValues(api)}
	slot.CompareAndSwap(nil, am)
	return slot.Load()
}

// partitionCollector reports per-partition sizes and offsets at scrape time.
type partitionCollector struct{ b *Broker }

var (
	descSize    = prometheus.NewDesc("sluice_partition_size_bytes", "Bytes of a partition's segments.", []string{"topic", "partition"}, nil)
	descEnd     = prometheus.NewDesc("sluice_partition_log_end_offset", "Log end offset.", []string{"topic", "partition"}, nil)
	descStart   = prometheus.NewDesc("sluice_partition_log_start_offset", "Log start offset.", []string{"topic", "partition"}, nil)
	descHW      = prometheus.NewDesc("sluice_partition_high_watermark", "High watermark.", []string{"topic", "partition"}, nil)
	descDurable = prometheus.NewDesc("sluice_partition_durable_offset", "Offset below which the log is fsynced.", []string{"topic", "partition"}, nil)
	// Replication, on the partitions this broker leads in a cluster
	// (Kafka's UnderReplicatedPartitions and follower lag).
	descISR         = prometheus.NewDesc("sluice_partition_isr_size", "In-sync replicas of a partition this broker leads (committed ISR).", []string{"topic", "partition"}, nil)
	descUnderRepl   = prometheus.NewDesc("sluice_partition_under_replicated", "1 when a partition this broker leads has fewer in-sync replicas than replicas.", []string{"topic", "partition"}, nil)
	descFollowerLag = prometheus.NewDesc("sluice_partition_follower_lag", "Leader log end minus the follower's position (-1 while unknown).", []string{"topic", "partition", "replica"}, nil)
	partitionDsc    = []*prometheus.Desc{descSize, descEnd, descStart, descHW, descDurable, descISR, descUnderRepl, descFollowerLag}
)

func (c partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range partitionDsc {
		ch <- d
	}
}

func (c partitionCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b.parts == nil {
		return
	}
	for _, p := range c.b.parts.all() {
		lv := []string{p.topic, strconv.Itoa(int(p.id))}
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(p.log.Size()), lv...)
		ch <- prometheus.MustNewConstMetric(descEnd, prometheus.GaugeValue, float64(p.log.LogEndOffset()), lv...)
		ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(p.log.LogStartOffset()), lv...)
		ch <- prometheus.MustNewConstMetric(descHW, prometheus.GaugeValue, float64(p.highWatermark()), lv...)
		ch <- prometheus.MustNewConstMetric(descDurable, prometheus.GaugeValue, float64(p.log.DurableOffset()), lv...)
		l := p.leader.Load()
		if l == nil {
			continue
		}
		snap := l.Snapshot()
		under := 0.0
		if len(snap.ISR) < len(snap.Followers)+1 {
			under = 1
		}
		ch <- prometheus.MustNewConstMetric(descISR, prometheus.GaugeValue, float64(len(snap.ISR)), lv...)
		ch <- prometheus.MustNewConstMetric(descUnderRepl, prometheus.GaugeValue, under, lv...)
		leo := p.log.LogEndOffset()
		for _, f := range snap.Followers {
			lag := float64(-1)
			if f.LogEndOffset >= 0 {
				lag = float64(leo - f.LogEndOffset)
			}
			ch <- prometheus.MustNewConstMetric(descFollowerLag, prometheus.GaugeValue, lag, p.topic, strconv.Itoa(int(p.id)), strconv.Itoa(int(f.ReplicaID)))
		}
	}
}

// adminHandler serves /metrics, /healthz and /debug/pprof/.
func (b *Broker) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if b.closing.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
