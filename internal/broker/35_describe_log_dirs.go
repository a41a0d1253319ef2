package broker

// DescribeLogDirs: v0-4
//
// Behavior:
//   - One log directory (the data directory's logs/), with the size of
//     every hosted partition (or of the requested ones; null topics means
//     all) and, v4+, the file system's total and usable bytes.
//   - OffsetLag is 0: a single replica never lags itself.
//
// Version notes:
//   - v2: flexible; v3: top-level ErrorCode; v4: TotalBytes/UsableBytes

import (
	"path/filepath"
	"sort"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(35, 0, 4, (*Broker).handleDescribeLogDirs) }

func (b *Broker) handleDescribeLogDirs(r *request, req *kmsg.DescribeLogDirsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir, _ = filepath.Abs(filepath.Join(b.cfg.DataDir, "logs"))
	if dir.Dir == "" {
		dir.Dir = filepath.Join(b.cfg.DataDir, "logs")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.cfg.DataDir, &st); err == nil {
		dir.TotalBytes = int64(st.Blocks) * st.Bsize
		dir.UsableBytes = int64(st.Bavail) * st.Bsize
	} else {
		dir.TotalBytes, dir.UsableBytes = -1, -1
	}
	want := map[tpKey]bool{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			want[tpKey{t.Topic, p}] = true
		}
	}
	byTopic := map[string][]kmsg.DescribeLogDirsResponseDirTopicPartition{}
	for _, p := range b.parts.all() {
		if req.Topics != nil && !want[tpKey{p.topic, p.id}] {
			continue
		}
		dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		dp.Partition, dp.Size = p.id, p.log.Size()
		byTopic[p.topic] = append(byTopic[p.topic], dp)
	}
	names := make([]string, 0, len(byTopic))
	for n := range byTopic {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ps := byTopic[n]
		sort.Slice(ps, func(i, j int) bool { return ps[i].Partition < ps[j].Partition })
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic, dt.Partitions = n, ps
		dir.Topics = append(dir.Topics, dt)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp
}
