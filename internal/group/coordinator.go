package group

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Coordinator is the consumer-group coordinator for every group whose
// __consumer_offsets partition this broker leads.
type Coordinator struct {
	cfg Config
	log Log
	// manualTime: shards arm no timers; tests advance time with tick.
	manualTime bool

	mu struct {
		sync.RWMutex
		shards  map[int32]*shard
		loading map[int32]bool
		closed  bool
	}
}

// New returns a coordinator; call Load for each partition it should serve.
func New(cfg Config, log Log) *Coordinator {
	return newCoordinator(cfg, log, false)
}

func newCoordinator(cfg Config, log Log, manualTime bool) *Coordinator {
	c := &Coordinator{cfg: cfg.withDefaults(), log: log, manualTime: manualTime}
	c.mu.shards = make(map[int32]*shard)
	c.mu.loading = make(map[int32]bool)
	return c
}

// PartitionFor is the __consumer_offsets partition of a group: Kafka's
// abs(javaStringHashCode(groupID)) % Partitions.
func (c *Coordinator) PartitionFor(group string) int32 {
	return partitionFor(group, c.cfg.Partitions)
}

func partitionFor(group string, partitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(group)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0 // Kafka's Utils.abs
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// Load replays partition p of __consumer_offsets (groups, members of
// static/stable groups, committed offsets) and starts serving its groups.
// Requests for groups of a partition not loaded yet answer
// COORDINATOR_LOAD_IN_PROGRESS (while loading) or NOT_COORDINATOR.
// Loading a partition already loaded (or loading) does nothing.
func (c *Coordinator) Load(ctx context.Context, p int32) error {
	if p < 0 || p >= c.cfg.Partitions {
		return fmt.Errorf("group: load partition %d: out of range [0, %d)", p, c.cfg.Partitions)
	}
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.mu.shards[p] != nil || c.mu.loading[p] {
		c.mu.Unlock()
		return nil
	}
	c.mu.loading[p] = true
	c.mu.Unlock()

	start := c.cfg.Now()
	st, skipped, err := c.replay(ctx, p)

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mu.loading, p)
	if err != nil {
		return fmt.Errorf("group: load __consumer_offsets/%d: %w", p, err)
	}
	if c.mu.closed {
		return ErrClosed
	}
	c.mu.shards[p] = startShard(c, st)
	offsets := 0
	for _, g := range st.groups {
		for _, ps := range g.offsets {
			offsets += len(ps)
		}
	}
	level := slog.LevelInfo
	if len(st.groups) == 0 {
		level = slog.LevelDebug // 50 empty partitions on a new broker are not news
	}
	c.cfg.Logger.Log(context.Background(), level, "loaded consumer groups", "offsets_partition", p, "groups", len(st.groups),
		"offsets", offsets, "skipped_records", skipped, "took", c.cfg.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// replay reads partition p into a new state machine.
func (c *Coordinator) replay(ctx context.Context, p int32) (*partitionState, int, error) {
	l := newLoader()
	err := c.log.Read(p, func(b []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return l.batch(b)
	})
	if err != nil {
		return nil, 0, err
	}
	st := newPartitionState(p, c.cfg, c.cfg.Now())
	l.install(st)
	return st, l.skipped, nil
}

// Unload stops serving partition p (its leadership moved): parked requests
// answer NOT_COORDINATOR and its groups are forgotten until the next Load.
func (c *Coordinator) Unload(p int32) {
	c.mu.Lock()
	sh := c.mu.shards[p]
	delete(c.mu.shards, p)
	c.mu.Unlock()
	if sh != nil {
		sh.stop()
	}
}

// Close stops timers and background work. Parked requests answer
// NOT_COORDINATOR.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.mu.closed = true
	shards := slices.Collect(maps.Values(c.mu.shards))
	clear(c.mu.shards)
	c.mu.Unlock()
	for _, sh := range shards {
		sh.stop()
	}
}

// lookup finds the shard serving a group, or the error code for its absence.
func (c *Coordinator) lookup(group string) (*shard, int16) {
	p := c.PartitionFor(group)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if sh := c.mu.shards[p]; sh != nil {
		return sh, 0
	}
	if c.mu.loading[p] {
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return nil, kerr.NotCoordinator.Code
}

// failCode is the answer to a request whose call did not complete.
func failCode(stopped bool) int16 {
	if stopped {
		return kerr.NotCoordinator.Code
	}
	return kerr.RequestTimedOut.Code
}

// do routes a single-group request to its shard and waits for the answer;
// on failure it returns fallback with the error set by setErr.
func do[R any](ctx context.Context, c *Coordinator, group string, fallback R, setErr func(R, int16), mk func(reply func(R)) event) R {
	sh, code := c.lookup(group)
	if code != 0 {
		setErr(fallback, code)
		return fallback
	}
	r, ok, stopped := call(ctx, sh, mk)
	if !ok {
		setErr(fallback, failCode(stopped))
		return fallback
	}
	return r
}

// The request handlers below take the decoded request and return the
// response at the request's version (req.ResponseKind()). Those that wait
// (JoinGroup until the rebalance completes, SyncGroup until the leader's
// assignment, commits until durable) block; the broker calls them from a
// deferred response goroutine. ctx ends when the connection or broker goes.

// JoinGroup handles JoinGroup v0-9. The client id and host of new members
// come from ctx (WithClient).
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	case session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout:
		resp.ErrorCode = kerr.InvalidSessionTimeout.Code
		return resp
	}
	client := clientFrom(ctx)
	return do(ctx, c, req.Group, resp, func(r *kmsg.JoinGroupResponse, code int16) { r.ErrorCode = code },
		func(reply func(*kmsg.JoinGroupResponse)) event {
			return &joinEvent{req: req, client: client, reply: reply}
		})
}

// SyncGroup handles SyncGroup v0-5.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	return do(ctx, c, req.Group, resp, func(r *kmsg.SyncGroupResponse, code int16) { r.ErrorCode = code },
		func(reply func(*kmsg.SyncGroupResponse)) event { return &syncEvent{req: req, reply: reply} })
}

// Heartbeat handles Heartbeat v0-4.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	return do(ctx, c, req.Group, resp, func(r *kmsg.HeartbeatResponse, code int16) { r.ErrorCode = code },
		func(reply func(*kmsg.HeartbeatResponse)) event { return &heartbeatEvent{req: req, reply: reply} })
}

// LeaveGroup handles LeaveGroup v0-5 (v3+: batched members, by member id
// or by group.instance.id).
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	return do(ctx, c, req.Group, resp, func(r *kmsg.LeaveGroupResponse, code int16) { r.ErrorCode = code },
		func(reply func(*kmsg.LeaveGroupResponse)) event { return &leaveEvent{req: req, reply: reply} })
}

// OffsetCommit handles OffsetCommit v0-9; it answers once the offsets are
// durable.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	var unknown map[topicPartition]bool
	if exists := c.cfg.TopicExists; exists != nil {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if !exists(t.Topic, p.Partition) {
					if unknown == nil {
						unknown = make(map[topicPartition]bool)
					}
					unknown[topicPartition{t.Topic, p.Partition}] = true
				}
			}
		}
	}
	if req.Version == 0 && req.Generation != -1 {
		cp := *req
		cp.Generation = -1 // v0 has neither generation nor member
		req = &cp
	}
	fallback := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	setErr := func(r *kmsg.OffsetCommitResponse, code int16) {
		for _, t := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = p.Partition
				sp.ErrorCode = code
				if unknown[topicPartition{t.Topic, p.Partition}] {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			r.Topics = append(r.Topics, st)
		}
	}
	return do(ctx, c, req.Group, fallback, setErr,
		func(reply func(*kmsg.OffsetCommitResponse)) event {
			return &commitEvent{req: req, unknown: unknown, reply: reply}
		})
}

// OffsetFetch handles OffsetFetch v0-9 (v8+: batched groups). A group that
// does not exist answers offset -1 for what was asked and no error. With
// require_stable (v7+), a partition with a transactional offset commit
// still pending (its transaction not yet decided) answers
// UNSTABLE_OFFSET_COMMIT, which clients retry, as Kafka does.
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			sg, code := c.fetchGroup(ctx, rg, req.Version >= 7 && req.RequireStable)
			if code != 0 {
				sg = kmsg.NewOffsetFetchResponseGroup()
				sg.Group = rg.Group
				sg.ErrorCode = code
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil || req.Version < 2 { // null topics (v2+): every offset
		rg.Topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic, rt.Partitions = t.Topic, t.Partitions
			rg.Topics = append(rg.Topics, rt)
		}
	}
	sg, code := c.fetchGroup(ctx, rg, req.Version >= 7 && req.RequireStable)
	if code != 0 {
		if req.Version >= 2 {
			resp.ErrorCode = code
			return resp
		}
		// v0-1 have no group error: every partition carries it.
		sg = kmsg.NewOffsetFetchResponseGroup()
		for _, t := range rg.Topics {
			st := kmsg.NewOffsetFetchResponseGroupTopic()
			st.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				sp.Partition, sp.Offset, sp.Metadata, sp.ErrorCode = p, -1, kmsg.StringPtr(""), code
				st.Partitions = append(st.Partitions, sp)
			}
			sg.Topics = append(sg.Topics, st)
		}
	}
	for _, t := range sg.Topics {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (c *Coordinator) fetchGroup(ctx context.Context, rg kmsg.OffsetFetchRequestGroup, requireStable bool) (kmsg.OffsetFetchResponseGroup, int16) {
	sh, code := c.lookup(rg.Group)
	if code != 0 {
		return kmsg.OffsetFetchResponseGroup{}, code
	}
	sg, ok, stopped := call(ctx, sh, func(reply func(kmsg.OffsetFetchResponseGroup)) event {
		return &fetchEvent{group: rg, requireStable: requireStable, reply: reply}
	})
	if !ok {
		return sg, failCode(stopped)
	}
	return sg, 0
}

// ListGroups handles ListGroups v0-5 (v4: states filter, v5: types filter,
// both case-insensitive). While a partition loads it answers
// COORDINATOR_LOAD_IN_PROGRESS with the groups of the loaded ones.
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	lower := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = strings.ToLower(s)
		}
		return out
	}
	states, types := lower(req.StatesFilter), lower(req.TypesFilter)
	c.mu.RLock()
	if len(c.mu.loading) > 0 {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	shards := slices.SortedFunc(maps.Values(c.mu.shards), func(a, b *shard) int { return cmp.Compare(a.p, b.p) })
	c.mu.RUnlock()
	for _, sh := range shards {
		gs, ok, stopped := call(ctx, sh, func(reply func([]kmsg.ListGroupsResponseGroup)) event {
			return &listEvent{states: states, types: types, reply: reply}
		})
		if !ok {
			if !stopped {
				resp.ErrorCode = failCode(stopped)
				return resp
			}
			continue
		}
		resp.Groups = append(resp.Groups, gs...)
	}
	return resp
}

// DescribeGroups handles DescribeGroups v0-5.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	resp.Groups = make([]kmsg.DescribeGroupsResponseGroup, len(req.Groups))
	fail := func(i int, code int16) {
		resp.Groups[i] = kmsg.NewDescribeGroupsResponseGroup()
		resp.Groups[i].Group = req.Groups[i]
		resp.Groups[i].ErrorCode = code
	}
	perGroup(ctx, c, req.Groups, resp.Groups, fail, func(names []string, reply func([]kmsg.DescribeGroupsResponseGroup)) event {
		return &describeEvent{groups: names, reply: reply}
	})
	return resp
}

// DeleteGroups handles DeleteGroups v0-2: Empty groups are deleted with
// their offsets (tombstones), answered once durable.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	resp.Groups = make([]kmsg.DeleteGroupsResponseGroup, len(req.Groups))
	fail := func(i int, code int16) {
		resp.Groups[i] = kmsg.NewDeleteGroupsResponseGroup()
		resp.Groups[i].Group = req.Groups[i]
		resp.Groups[i].ErrorCode = code
	}
	perGroup(ctx, c, req.Groups, resp.Groups, fail, func(names []string, reply func([]kmsg.DeleteGroupsResponseGroup)) event {
		return &deleteGroupsEvent{groups: names, reply: reply}
	})
	return resp
}

// perGroup answers a request that names groups: each shard is asked once,
// with its groups in request order, and answer i lands in out[i].
func perGroup[T any](ctx context.Context, c *Coordinator, groups []string, out []T, fail func(int, int16), mk func(names []string, reply func([]T)) event) {
	c.fanOut(groups, fail, func(sh *shard, idx []int) bool {
		names := make([]string, len(idx))
		for j, i := range idx {
			names[j] = groups[i]
		}
		res, ok, stopped := call(ctx, sh, func(reply func([]T)) event { return mk(names, reply) })
		for j, i := range idx {
			if !ok {
				fail(i, failCode(stopped))
			} else {
				out[i] = res[j]
			}
		}
		return ok
	})
}

// fanOut splits groups by shard (keeping request order within a shard)
// and calls each shard in partition order; groups of partitions not served
// here get fail. A duplicated group id is answered for each occurrence.
func (c *Coordinator) fanOut(groups []string, fail func(int, int16), each func(*shard, []int) bool) {
	byShard := make(map[*shard][]int)
	var order []*shard
	for i, g := range groups {
		sh, code := c.lookup(g)
		if code != 0 {
			fail(i, code)
			continue
		}
		if byShard[sh] == nil {
			order = append(order, sh)
		}
		byShard[sh] = append(byShard[sh], i)
	}
	for _, sh := range order {
		each(sh, byShard[sh])
	}
}

// OffsetDelete handles OffsetDelete v0.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	return do(ctx, c, req.Group, resp, func(r *kmsg.OffsetDeleteResponse, code int16) { r.ErrorCode = code },
		func(reply func(*kmsg.OffsetDeleteResponse)) event { return &offsetDeleteEvent{req: req, reply: reply} })
}

// tick makes every shard run its timers at cfg.Now() and waits until they
// have (tests with a manual clock).
func (c *Coordinator) tick() {
	c.mu.RLock()
	shards := slices.Collect(maps.Values(c.mu.shards))
	c.mu.RUnlock()
	for _, sh := range shards {
		sh.tick()
	}
}
