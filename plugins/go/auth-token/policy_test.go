package main

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/modgatetest"
)

func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func setUp(t *testing.T) {
	t.Helper()
	modgatetest.Reset()
	loaded, problem = nil, nil
	modgatetest.SetConfig(t, map[string]any{
		"tokens": []map[string]any{
			{"name": "ci", "sha256": digest("ci-token"), "scopes": []string{"read", "publish"}, "modules": []string{"corp.example/*"}},
		},
	})
}

func facts(module string, action modgate.Action, auth string) modgate.Facts {
	f := modgate.Facts{Method: "GET", Path: "/" + module + "/@v/list", Module: module, Action: action, PeerAddr: "127.0.0.1:1"}
	if auth != "" {
		f.Headers = []modgate.Header{{Name: "authorization", Value: auth}}
	}
	return f
}

func TestDecisions(t *testing.T) {
	setUp(t)
	cases := []struct {
		facts modgate.Facts
		want  string
	}{
		{facts("corp.example/app", modgate.Read, "Bearer ci-token"), "allow ci [read publish]"},
		{facts("corp.example/app", modgate.Read, "Basic eDpjaS10b2tlbg=="), "allow ci [read publish]"}, // x:ci-token
		{facts("corp.example/app", modgate.Read, ""), "deny 401 " + authRequired},
		{facts("corp.example/app", modgate.Read, "Bearer wrong"), "deny 401 invalid credentials"},
		{facts("corp.example/app", modgate.Read, "Token x"), "deny 401 " + malformed},
		{facts("github.com/x/y", modgate.Read, "Bearer ci-token"), "deny 403 token ci may not read github.com/x/y"},
		{facts("corp.example/app", modgate.Admin, "Bearer ci-token"), "deny 403 token ci may not admin corp.example/app"},
	}
	for _, c := range cases {
		if got := modgatetest.Authorize(c.facts).String(); got != c.want {
			t.Errorf("%v: got %q, want %q", c.facts.Headers, got, c.want)
		}
	}
	on, ttl, ok := modgatetest.Remembered()
	if !ok || !on.Module || !on.Action || len(on.Headers) != 1 || on.Headers[0] != "authorization" || ttl != 3600_000 {
		t.Errorf("remembered %+v for %d ms (%v)", on, ttl, ok)
	}
}

func TestBrokenConfigFailsClosed(t *testing.T) {
	modgatetest.Reset()
	loaded, problem = nil, nil
	modgatetest.SetConfigJSON(`{"tokens": [{"name": "x", "sha256": "not-hex", "scopes": ["read"], "modules": ["*"]}]}`)
	d := modgatetest.Authorize(facts("corp.example/app", modgate.Read, "Bearer x"))
	if status, _, ok := d.IsDeny(); !ok || status != 500 {
		t.Fatalf("got %v", d)
	}
	logs := modgatetest.Logs()
	if len(logs) != 1 || logs[0].Message != `invalid auth-token config: token "x": sha256 must be 64 hex digits` {
		t.Fatalf("logged %+v", logs)
	}
}

func TestModulePatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, module string
		want            bool
	}{
		{"corp.example/*", "corp.example/app", true},
		{"corp.example/*", "corp.example/app/v2", true},
		{"corp.example/*", "corp.example", false},
		{"corp.example", "corp.example/app", true},
		{"corp.example/team/...", "corp.example/team/x", true},
		{"*", "github.com/x", true},
		{"corp.*", "corp.example/x", true},
		{"corp.example/[a-c]*", "corp.example/dog", false},
	} {
		p, err := parsePattern(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.matches(c.module); got != c.want {
			t.Errorf("%q matches %q: got %v", c.pattern, c.module, got)
		}
	}
	if _, err := parsePattern("corp.example/[x"); err == nil {
		t.Error("an unclosed [ was accepted")
	}
}
