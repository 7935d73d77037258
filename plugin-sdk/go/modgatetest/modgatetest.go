//go:build !wasip1

// Package modgatetest runs a Go plugin's handlers natively, under `go test`, against a fake
// host: set the plugin's config, secrets and outbound HTTP, call the handler the way modgate
// does (a panic becomes the same fail-closed answer), and read what the plugin logged and
// asked the host to remember.
//
//	func TestTeamToken(t *testing.T) {
//		modgatetest.Reset()
//		modgatetest.SetConfig(t, map[string]any{"tokens": …})
//		d := modgatetest.Authorize(modgate.Facts{Method: "GET", Headers: …})
//		if _, _, ok := d.IsAllow(); !ok { t.Fatal(d) }
//	}
package modgatetest

import (
	"encoding/json"
	"testing"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/internal/fake"
	"modgate.dev/sdk/internal/handlers"
)

// Reset forgets the config, secrets, HTTP handler, cached values, logs and remembered answer.
func Reset() { *fake.The = *fake.New() }

// SetConfig sets the plugin's config table (what [plugins.NAME.config] holds), given as a
// value that encodes to a JSON object.
func SetConfig(t testing.TB, config any) {
	t.Helper()
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatalf("modgatetest.SetConfig: %v", err)
	}
	SetConfigJSON(string(b))
}

// SetConfigJSON sets the plugin's config table as JSON.
func SetConfigJSON(config string) {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	fake.The.Config = config
}

// SetSecret gives the secret name a value (and grants it, unless Grant restricts the grants).
func SetSecret(name, value string) {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	fake.The.Secrets[name] = value
}

// Grant restricts the plugin's grants.secrets to names (by default every secret set is granted).
func Grant(names ...string) {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	fake.The.Granted = map[string]bool{}
	for _, n := range names {
		fake.The.Granted[n] = true
	}
}

// HandleHTTP answers the plugin's outbound requests with f (without it, every request is
// refused as not granted).
func HandleHTTP(f func(modgate.HTTPRequest) (modgate.HTTPResponse, error)) {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	fake.The.HTTP = func(r fake.Request) (fake.Response, error) {
		req := modgate.HTTPRequest{Method: r.Method, URL: r.URL, Body: r.Body}
		for _, h := range r.Headers {
			req.Headers = append(req.Headers, modgate.Header{Name: h[0], Value: h[1]})
		}
		resp, err := f(req)
		out := fake.Response{Status: resp.Status, Body: resp.Body}
		for _, h := range resp.Headers {
			out.Headers = append(out.Headers, [2]string{h.Name, h.Value})
		}
		return out, err
	}
}

// Authorize calls the plugin's authorize handler as modgate would, after forgetting what the
// previous call asked to remember.
func Authorize(f modgate.Facts) modgate.Decision {
	forget()
	return handlers.CallAuthorize(f)
}

// Route calls the plugin's route handler as modgate would.
func Route(f modgate.Facts) (string, bool) {
	forget()
	return handlers.CallRoute(f)
}

func forget() {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	fake.The.Remembered = nil
	fake.The.Limits = nil
}

// LogEntry is one line the plugin logged.
type LogEntry struct {
	Level   modgate.Level
	Message string
}

// Logs gives what the plugin logged since the last Reset.
func Logs() []LogEntry {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	out := make([]LogEntry, len(fake.The.Logs))
	for i, e := range fake.The.Logs {
		out[i] = LogEntry{Level: modgate.Level(e.Level), Message: e.Message}
	}
	return out
}

// Remembered gives what the last call asked the host to remember (memo), and for how many
// milliseconds; ok is false when it asked nothing.
func Remembered() (on modgate.DependsOn, ttlMs uint32, ok bool) {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	m := fake.The.Remembered
	if m == nil {
		return modgate.DependsOn{}, 0, false
	}
	return modgate.DependsOn{
		Method: m.Method, Path: m.Path, Module: m.Module, Version: m.Version, Action: m.Action,
		PeerIP: m.PeerIP, TLSClientIdentity: m.TLSClientIdentity, Headers: m.Headers,
	}, m.TTLMs, true
}

// AppliedLimit is one limit the plugin applied; Subject is "principal", "ip", "module" or
// "key <key>".
type AppliedLimit struct {
	Name, Subject     string
	RequestsPerSecond float64
	Burst             uint32
	BytesPerDay       uint64
}

// Limits gives the limits the last call applied (modgate.ApplyLimits).
func Limits() []AppliedLimit {
	fake.The.Mu.Lock()
	defer fake.The.Mu.Unlock()
	out := make([]AppliedLimit, len(fake.The.Limits))
	for i, l := range fake.The.Limits {
		out[i] = AppliedLimit(l)
	}
	return out
}
