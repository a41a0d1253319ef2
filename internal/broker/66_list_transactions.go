package broker

// ListTransactions: v0-1
//
// Behavior:
//   - KIP-664. Every transactional id this broker coordinates (Dead ones
//     left out), by id, with its producer id and state name.
//   - StateFilters keeps the ids in one of the given states (Kafka's
//     names); names that are not states are returned in
//     UnknownStateFilters and match nothing. ProducerIDFilters keeps the
//     given producer ids. Empty filters keep everything.
//   - No __transaction_state yet: an empty list. While the coordinator
//     loads: COORDINATOR_NOT_AVAILABLE.
//
// Version notes:
//   - v1: DurationFilterMillis (KIP-994): when >= 0, only transactions
//     that started more than that many ms ago (Kafka's test: now - start
//     > filter, so ids with no ongoing transaction, start -1, are kept).
//   - v2 (TransactionalIDPattern) is not registered.

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/internal/txn"
)

func init() { register(66, 0, 1, (*Broker).handleListTransactions) }

// txnStates maps Kafka's state names to states.
var txnStates = func() map[string]txn.State {
	m := map[string]txn.State{}
	for s := txn.Empty; s <= txn.PrepareEpochFence; s++ {
		m[s.String()] = s
	}
	return m
}()

func (b *Broker) handleListTransactions(r *request, req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	states := map[txn.State]bool{}
	for _, name := range req.StateFilters {
		if s, ok := txnStates[name]; ok {
			states[s] = true
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	pids := map[int64]bool{}
	for _, id := range req.ProducerIDFilters {
		pids[id] = true
	}
	duration := int64(-1)
	if req.Version >= 1 {
		duration = req.DurationFilterMillis
	}

	if err := b.txns.readErr(); err != nil {
		if !errors.Is(err, errNoTxnState) {
			resp.ErrorCode = errCode(err)
		}
		return resp
	}
	mds, err := b.txns.coord.List()
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp
	}
	now := time.Now().UnixMilli()
	for _, md := range mds {
		switch {
		case len(req.StateFilters) > 0 && !states[md.State]:
			continue
		case len(pids) > 0 && !pids[md.ProducerID]:
			continue
		case duration >= 0 && now-md.StartMs <= duration:
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID = md.TransactionalID
		ts.ProducerID = md.ProducerID
		ts.TransactionState = md.State.String()
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}
