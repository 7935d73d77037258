// go test runs these natively, against the SDK's fake host (no modgate needed).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/modgatetest"
)

func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// setUp gives the plugin two teams, as modgate.toml would, and a fresh instance.
func setUp(t *testing.T, trustedProxies ...string) {
	t.Helper()
	modgatetest.Reset()
	loaded, problem = nil, nil
	modgatetest.SetConfig(t, map[string]any{
		"teams": []map[string]any{
			{"name": "payments", "sha256": digest("pay"), "modules": []string{"corp.example/payments"}, "networks": []string{"127.0.0.0/8"}},
			{"name": "search", "sha256": digest("find"), "modules": []string{"corp.example/search"}, "networks": []string{"10.20.0.0/16"}},
		},
		"trusted_proxies": trustedProxies,
	})
}

// authorize calls the plugin as modgate does, for a GET of module's version list.
func authorize(module, peer string, headers ...string) string {
	f := modgate.Facts{Method: "GET", Path: "/" + module + "/@v/list", Module: module, Action: modgate.Read, PeerAddr: peer}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		f.Headers = append(f.Headers, modgate.Header{Name: name, Value: value})
	}
	return modgatetest.Authorize(f).String()
}

const (
	payments  = "corp.example/payments/hello"
	search    = "corp.example/search/index"
	bearerPay = "authorization: Bearer pay"
)

func TestTokensDecideTheTeamAndItsModules(t *testing.T) {
	setUp(t)
	local := "127.0.0.1:50000"
	for _, c := range []struct{ got, want string }{
		{authorize(payments, local, bearerPay), "allow payments [read]"},
		// base64("payments:pay"): a .netrc entry's Basic auth.
		{authorize(payments, local, "authorization: Basic cGF5bWVudHM6cGF5"), "allow payments [read]"},
		{authorize(payments, local), "abstain"},
		{authorize(payments, local, "authorization: Bearer nope"), "deny 401 invalid credentials"},
		{authorize(search, local, bearerPay), "deny 403 team payments may not download corp.example/search/index"},
		// A prefix covers whole path elements only.
		{authorize("corp.example/paymentsx", local, bearerPay), "deny 403 team payments may not download corp.example/paymentsx"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestNetworksUseThePeerAndUnmapIPv4MappedAddresses(t *testing.T) {
	setUp(t)
	if got := authorize(search, "127.0.0.1:1", "authorization: Bearer find"); got != "deny 403 team search may not download from 127.0.0.1" {
		t.Error(got)
	}
	if got := authorize(search, "[::ffff:10.20.3.4]:1", "authorization: Bearer find"); got != "allow search [read]" {
		t.Error(got)
	}
}

func TestXForwardedForCountsOnlyFromTrustedProxies(t *testing.T) {
	find := "authorization: Bearer find"
	// Anyone may send the header: without trusted proxies it changes nothing.
	setUp(t)
	if got := authorize(search, "127.0.0.1:1", find, "x-forwarded-for: 10.20.3.4"); got != "deny 403 team search may not download from 127.0.0.1" {
		t.Error(got)
	}
	setUp(t, "127.0.0.1/32")
	for _, c := range []struct{ xff, want string }{
		// From a trusted proxy, the rightmost hop it added is the client...
		{"10.20.3.4", "allow search [read]"},
		// ...not what the client claimed further left.
		{"10.20.3.4, 192.0.2.7", "deny 403 team search may not download from 192.0.2.7"},
		{"junk", "deny 400 team-auth: unreadable client address"},
	} {
		if got := authorize(search, "127.0.0.1:1", find, "x-forwarded-for: "+c.xff); got != c.want {
			t.Errorf("X-Forwarded-For %s: got %q, want %q", c.xff, got, c.want)
		}
	}
}

func TestAConfigMistakeFailsClosedAndIsLogged(t *testing.T) {
	modgatetest.Reset()
	loaded, problem = nil, nil
	modgatetest.SetConfigJSON(`{"teams": [{"name": "payments", "sha256": "B1F3", "modules": [], "networks": []}]}`)
	if got := authorize(payments, "127.0.0.1:1", bearerPay); got != "deny 403 team-auth: invalid config (see the server log)" {
		t.Error(got)
	}
	logs := modgatetest.Logs()
	if len(logs) != 1 || !strings.Contains(logs[0].Message, "must be 64 lower-case hex digits") {
		t.Errorf("logged %+v", logs)
	}
}
