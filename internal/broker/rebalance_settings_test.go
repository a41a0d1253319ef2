package broker_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-io/sluice/internal/broker"
	"github.com/sluice-io/sluice/pkg/sluicetest"
)

// TestLeaderRebalanceSettings: auto.leader.rebalance.enable,
// leader.imbalance.check.interval.seconds and
// leader.imbalance.per.broker.percentage are broker settings: validated,
// and described by DescribeConfigs (set values and Kafka's defaults).
func TestLeaderRebalanceSettings(t *testing.T) {
	for _, bad := range []map[string]string{
		{"auto.leader.rebalance.enable": "yes"},
		{"leader.imbalance.check.interval.seconds": "0"},
		{"leader.imbalance.per.broker.percentage": "-1"},
	} {
		if err := (broker.Config{Settings: bad}).Validate(); err == nil {
			t.Errorf("settings %v accepted", bad)
		}
	}
	b := sluicetest.New(t, sluicetest.Setting("auto.leader.rebalance.enable", "false"),
		sluicetest.Setting("leader.imbalance.check.interval.seconds", "7"))
	adm := kadm.NewClient(newClient(t, b.Addr()))
	bcs, err := adm.DescribeBrokerConfigs(testCtx(t, 30*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"auto.leader.rebalance.enable":            "false",
		"leader.imbalance.check.interval.seconds": "7",
		"leader.imbalance.per.broker.percentage":  "10",
	}
	got := map[string]string{}
	for _, rc := range bcs {
		for _, c := range rc.Configs {
			if _, ok := want[c.Key]; ok {
				got[c.Key] = c.MaybeValue()
			}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("DescribeConfigs %s = %q, want %q", k, got[k], v)
		}
	}
}
