package metadata

import (
	"maps"
	"slices"
)

// Replica placement, decided on the node that plans a topic or partition
// creation (never in the FSM) and carried in the command.

// placementBroker is a live broker as placement sees it.
type placementBroker struct {
	id   int32
	rack string
}

// liveBrokersLocked returns the live (unfenced, not shutting down)
// brokers ordered by id.
func (st *state) liveBrokersLocked() []placementBroker {
	var out []placementBroker
	for _, id := range st.sortedBrokerIDsLocked() {
		if b := st.brokers[id]; b.Live() {
			out = append(out, placementBroker{id: id, rack: b.Rack})
		}
	}
	return out
}

// placeReplicas places partitions with rf replicas each on brokers
// (ordered by id). When any broker has a rack it is Kafka's rack-aware
// placement (a broker without a rack counts as rack ""), otherwise Kafka's
// rack-unaware round robin. start and shift are Kafka's start index and
// replica shift; firstPartition is the id of the first new partition.
func placeReplicas(brokers []placementBroker, partitions, rf, start, shift, firstPartition int) [][]int32 {
	ids := make([]int32, len(brokers))
	racks := false
	for i, b := range brokers {
		ids[i] = b.id
		racks = racks || b.rack != ""
	}
	if !racks {
		return assignReplicas(ids, partitions, rf, start, shift, firstPartition)
	}
	return assignReplicasRackAware(brokers, partitions, rf, start, shift, firstPartition)
}

// rackAlternated orders brokers by alternating racks (racks sorted, brokers
// of a rack in id order): Kafka's getRackAlternatedBrokerList.
func rackAlternated(brokers []placementBroker) []int32 {
	byRack := map[string][]int32{}
	for _, b := range brokers {
		byRack[b.rack] = append(byRack[b.rack], b.id)
	}
	racks := slices.Sorted(maps.Keys(byRack))
	next := make(map[string]int, len(racks))
	out := make([]int32, 0, len(brokers))
	for ri := 0; len(out) < len(brokers); ri = (ri + 1) % len(racks) {
		r := racks[ri]
		if next[r] < len(byRack[r]) {
			out = append(out, byRack[r][next[r]])
			next[r]++
		}
	}
	return out
}

// assignReplicasRackAware is Kafka's AdminUtils.assignReplicasToBrokersRackAware:
// leaders go round the rack-alternated broker list; each follower is the
// next broker (at a shift growing every len(brokers) partitions) whose rack
// has no replica yet, unless every rack has one, and that is not a replica
// yet. So replicas spread over min(rf, racks) racks.
func assignReplicasRackAware(brokers []placementBroker, partitions, rf, start, shift, firstPartition int) [][]int32 {
	rackOf := make(map[int32]string, len(brokers))
	numRacks := map[string]bool{}
	for _, b := range brokers {
		rackOf[b.id] = b.rack
		numRacks[b.rack] = true
	}
	arranged := rackAlternated(brokers)
	n := len(arranged)
	out := make([][]int32, 0, partitions)
	p := firstPartition
	for range partitions {
		if p > 0 && p%n == 0 {
			shift++
		}
		first := (p + start) % n
		leader := arranged[first]
		rs := []int32{leader}
		racksWith := map[string]bool{rackOf[leader]: true}
		for k := 0; len(rs) < rf; k++ {
			b := arranged[(first+1+(shift*len(numRacks)+k)%(n-1))%n]
			if k >= 2*n { // cannot happen with rf <= n; stay bounded anyway
				for _, c := range arranged {
					if !slices.Contains(rs, c) {
						b = c
						break
					}
				}
			}
			r := rackOf[b]
			if (!racksWith[r] || len(racksWith) == len(numRacks)) && !slices.Contains(rs, b) {
				rs = append(rs, b)
				racksWith[r] = true
			}
		}
		out = append(out, rs)
		p++
	}
	return out
}
