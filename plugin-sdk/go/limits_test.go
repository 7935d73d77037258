//go:build !wasip1

package modgate_test

import (
	"testing"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/authorizer"
	"modgate.dev/sdk/modgatetest"
)

func TestApplyLimitsReachesTheHost(t *testing.T) {
	modgatetest.Reset()
	authorizer.Handle(func(f modgate.Facts) modgate.Decision {
		if err := modgate.ApplyLimits(
			modgate.Limit{Name: "per-ip", Subject: modgate.PerPeerIP, RequestsPerSecond: 2.5},
			modgate.Limit{Name: "tenant", Subject: modgate.PerKey("tenant " + f.Module), BytesPerDay: 1 << 20},
		); err != nil {
			return modgate.Deny(503, err.Error())
		}
		return modgate.Abstain()
	})
	if d := modgatetest.Authorize(modgate.Facts{Module: "example.com/m"}); d.String() != "abstain" {
		t.Fatalf("decision %v", d)
	}
	got := modgatetest.Limits()
	want := []modgatetest.AppliedLimit{
		{Name: "per-ip", Subject: "ip", RequestsPerSecond: 2.5},
		{Name: "tenant", Subject: "key tenant example.com/m", BytesPerDay: 1 << 20},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
}
