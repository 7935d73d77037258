package modgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Level is a log level.
type Level uint8

// The log levels, as the host's structured log has them.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes message into modgate's log at level, tagged with the plugin's name. The host caps
// what one call may log.
func Log(level Level, message string) { hostLog(level, message) }

// Debugf logs at debug level, formatted as fmt.Sprintf does.
func Debugf(format string, args ...any) { hostLog(LevelDebug, fmt.Sprintf(format, args...)) }

// Infof logs at info level.
func Infof(format string, args ...any) { hostLog(LevelInfo, fmt.Sprintf(format, args...)) }

// Warnf logs at warn level.
func Warnf(format string, args ...any) { hostLog(LevelWarn, fmt.Sprintf(format, args...)) }

// Errorf logs at error level.
func Errorf(format string, args ...any) { hostLog(LevelError, fmt.Sprintf(format, args...)) }

// ConfigJSON is the plugin's own config table from the modgate TOML file, as a JSON object
// ("{}" when there is none).
func ConfigJSON() string { return hostConfigJSON() }

// Config decodes the plugin's config table into v (a pointer, as for json.Unmarshal).
func Config(v any) error {
	if err := json.Unmarshal([]byte(hostConfigJSON()), v); err != nil {
		return fmt.Errorf("plugin config: %w", err)
	}
	return nil
}

// KVGet gives the value under key in the plugin's key-value cache (shared by its instances),
// unless it is missing or expired. Entries may disappear at any time: a cache, not storage.
func KVGet(key string) ([]byte, bool) { return hostKVGet(key) }

// KVSet stores value under key, for ttl when ttl > 0. The host caps sizes.
func KVSet(key string, value []byte, ttl time.Duration) { hostKVSet(key, value, ttl) }

// KVDelete removes key.
func KVDelete(key string) { hostKVDelete(key) }

// The errors of Secret.
var (
	// ErrSecretNotGranted: the name is not in the plugin's grants.secrets.
	ErrSecretNotGranted = errors.New("secret not granted (add it to the plugin's grants.secrets)")
	// ErrSecretNotFound: granted, but the host has no value for it.
	ErrSecretNotFound = errors.New("secret not set on the host")
)

// Secret gives the value of a secret named in the plugin's grants.secrets.
func Secret(name string) (string, error) { return hostSecret(name) }

// HTTPRequest is an outbound request, sent through the host to the plugin's grants.hosts only.
type HTTPRequest struct {
	Method string
	// URL is absolute, http:// or https://.
	URL     string
	Headers []Header
	Body    []byte
}

// HTTPResponse is what came back, whole.
type HTTPResponse struct {
	Status  uint16
	Headers []Header
	Body    []byte
}

// Header gives the first value of the response header name (any case).
func (r *HTTPResponse) Header(name string) (string, bool) {
	f := Facts{Headers: r.Headers}
	return f.Header(name)
}

// HTTPError is why an outbound request failed.
type HTTPError struct {
	// Kind is "not-granted", "invalid-request", "failed" or "timeout".
	Kind    string
	Message string
}

func (e *HTTPError) Error() string {
	if e.Message == "" {
		return "http: " + e.Kind
	}
	return "http: " + e.Kind + ": " + e.Message
}

// Send sends req through the host and waits for the whole response. The call's deadline
// covers it.
func Send(req HTTPRequest) (HTTPResponse, error) { return hostSend(req) }

// Get sends a GET to url.
func Get(url string) (HTTPResponse, error) { return hostSend(HTTPRequest{Method: "GET", URL: url}) }

// DependsOn names the request facts an answer depended on, for Remember.
type DependsOn struct {
	Method, Path, Module, Version, Action, PeerIP, TLSClientIdentity bool
	// Headers are header names (lower case).
	Headers []string
}

// Remember tells the host, during a call, that the answer it returns depends only on the facts
// marked in on (and on the plugin's config and secrets), so the host may give the same answer
// to requests that agree on them for up to ttl without calling the plugin. Answers that depend
// on anything else (the time, kv or http state, chance) must not be remembered.
func Remember(on DependsOn, ttl time.Duration) {
	ms := ttl.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	hostRemember(on, uint32(ms))
}
