package broker

// DeleteTopics: v0-6
//
// Behavior:
//   - Deletes topics through the metadata quorum; partition logs are closed
//     and their directories removed when the deletion is applied.
//   - Topics by name (v0-5) or by name or id (v6+).
//   - Errors per topic: UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID,
//     TOPIC_DELETION_DISABLED (delete.topic.enable=false), INVALID_REQUEST
//     for an internal topic.
//
// Version notes:
//   - v4: flexible; v5: ErrorMessage; v6: topic ids

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(20, 0, 6, (*Broker).handleDeleteTopics) }

func (b *Broker) handleDeleteTopics(r *request, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{t.Topic, t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: kmsg.StringPtr(n)})
		}
	}
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		err := func() error {
			var name string
			switch {
			case tg.id != ([16]byte{}):
				t, ok := b.meta.TopicByID(tg.id)
				if !ok {
					return kerr.UnknownTopicID
				}
				name = t.Name
				st.Topic = kmsg.StringPtr(name)
			case tg.name != nil:
				name = *tg.name
			default:
				return kerr.InvalidRequest
			}
			t, ok := b.meta.Topic(name)
			if !ok {
				return kerr.UnknownTopicOrPartition
			}
			st.TopicID = t.ID
			if !b.set.deleteTopicEnable {
				return kerr.TopicDeletionDisabled
			}
			if t.Internal {
				return kerr.InvalidRequest
			}
			if err := b.meta.DeleteTopic(r.ctx, name); err != nil {
				return err
			}
			b.logger.Info("deleted topic", "topic", name)
			return nil
		}()
		if err != nil {
			st.ErrorCode = errCode(err)
			if req.Version >= 5 {
				st.ErrorMessage = errMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
