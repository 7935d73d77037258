package modgate_test

import (
	"fmt"
	"time"

	modgate "modgate.dev/sdk"
)

func ExampleFacts_BearerToken() {
	f := modgate.Facts{Headers: []modgate.Header{{Name: "authorization", Value: "Bearer s3cret"}}}
	token, ok := f.BearerToken()
	fmt.Println(token, ok)
	// Output: s3cret true
}

func ExampleFacts_BasicAuth() {
	// What the go command sends for a .netrc entry (login ci, password s3cret).
	f := modgate.Facts{Headers: []modgate.Header{{Name: "authorization", Value: "Basic Y2k6czNjcmV0"}}}
	user, password, ok := f.BasicAuth()
	fmt.Println(user, password, ok)
	// Output: ci s3cret true
}

func ExampleAllow() {
	fmt.Println(modgate.Allow("ci", "read", "publish"))
	fmt.Println(modgate.Forbidden("not for you"))
	fmt.Println(modgate.Abstain())
	// Output:
	// allow ci [read publish]
	// deny 403 not for you
	// abstain
}

func ExampleRemember() {
	// The answer depends on the Authorization header, the module and the action only: modgate
	// may give it again for an hour to requests that agree on those.
	modgate.Remember(modgate.DependsOn{Headers: []string{"authorization"}, Module: true, Action: true}, time.Hour)
}

func ExampleConfig() {
	var config struct {
		Tokens []string `json:"tokens"`
	}
	if err := modgate.Config(&config); err != nil {
		modgate.Errorf("%v", err)
	}
	fmt.Println(len(config.Tokens))
	// Output: 0
}

func ExampleApplyLimits() {
	// 20 requests/s per client address (40 at once), and 10 GiB a day per principal: modgate
	// counts them and answers 429 with Retry-After once one is spent.
	err := modgate.ApplyLimits(
		modgate.Limit{Name: "per-ip", Subject: modgate.PerPeerIP, RequestsPerSecond: 20, Burst: 40},
		modgate.Limit{Name: "per-user-bytes", Subject: modgate.PerPrincipal, BytesPerDay: 10 << 30},
	)
	fmt.Println(err)
	// Output: <nil>
}
