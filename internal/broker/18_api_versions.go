package broker

// ApiVersions: v0-4
//
// Behavior:
//   - Answers with every registered API key and its version range; the
//     table is built from the handlers the NN_*.go files register.
//   - A version above the supported range is answered the way Kafka does
//     (KIP-511): a v0 response carrying UNSUPPORTED_VERSION and our
//     ApiVersions range, so the client retries with a version we know.
//   - v3+: the client software name and version must match
//     [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?, else INVALID_REQUEST.
//   - v3+: features, as a Kafka 4 cluster advertises them: supported
//     transaction.version 0-2 and the finalized level (the
//     transaction.version setting, default 2, which enables KIP-890 part
//     2 in clients), FinalizedFeaturesEpoch 0. A level of 0 is not listed
//     as finalized, as Kafka leaves out features at level 0.
//
// Version notes:
//   - v1: ThrottleMillis
//   - v3: flexible; ClientSoftwareName/Version; supported features

import (
	"regexp"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

func init() { register(apiVersionsKey, 0, 4, (*Broker).handleApiVersions) }

var softwareNameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func (b *Broker) handleApiVersions(r *request, req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 3 && (!softwareNameRE.MatchString(req.ClientSoftwareName) || !softwareNameRE.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	resp.ApiKeys = apiVersionsTable()
	if req.Version >= 3 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = "transaction.version", 0, 2
		resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
		resp.FinalizedFeaturesEpoch = 0
		if v := b.txns.version(); v > 0 {
			ff := kmsg.NewApiVersionsResponseFinalizedFeature()
			ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "transaction.version", v, v
			resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
		}
	}
	return resp
}

// apiVersionsUnsupported is the v0 answer to an ApiVersions request of a
// version we do not support.
func apiVersionsUnsupported(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	h := handlers[apiVersionsKey]
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey, k.MinVersion, k.MaxVersion = apiVersionsKey, h.min, h.max
	resp.ApiKeys = append(resp.ApiKeys, k)
	return resp
}

func apiVersionsTable() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(handlers))
	for key, h := range handlers {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, h.min, h.max
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}
