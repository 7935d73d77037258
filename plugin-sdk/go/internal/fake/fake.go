//go:build !wasip1

// Package fake is the host the SDK talks to natively (go test), set up by package modgatetest.
package fake

import (
	"sync"
	"time"
)

// Entry is one logged line.
type Entry struct {
	Level   uint8
	Message string
}

// Request and Response are an outbound HTTP exchange.
type Request struct {
	Method, URL string
	Headers     [][2]string
	Body        []byte
}

// Response is what a fake upstream answers.
type Response struct {
	Status  uint16
	Headers [][2]string
	Body    []byte
}

type kvEntry struct {
	value   []byte
	expires time.Time
}

// Host is the fake host's state.
type Host struct {
	Mu      sync.Mutex
	Config  string
	Secrets map[string]string
	// Granted names the secrets in grants.secrets; nil grants every secret in Secrets.
	Granted map[string]bool
	HTTP    func(Request) (Response, error)
	Logs    []Entry
	KV      map[string]kvEntry
	// Remembered is what the last call passed to memo.remember (nil: nothing).
	Remembered *Memo
	// Limits is what the last call passed to limits.apply.
	Limits []Limit
}

// Limit is one limit passed to limits.apply; Subject is "principal", "ip", "module" or
// "key <key>".
type Limit struct {
	Name, Subject     string
	RequestsPerSecond float64
	Burst             uint32
	BytesPerDay       uint64
}

// Memo is one memo.remember call.
type Memo struct {
	Method, Path, Module, Version, Action, PeerIP, TLSClientIdentity bool
	Headers                                                          []string
	TTLMs                                                            uint32
}

// The host every native call reaches.
var The = New()

// New is a host with no config, secrets, HTTP or cached values.
func New() *Host {
	return &Host{Config: "{}", Secrets: map[string]string{}, KV: map[string]kvEntry{}}
}

// KVGet reads a key, unless expired.
func (h *Host) KVGet(key string) ([]byte, bool) {
	h.Mu.Lock()
	defer h.Mu.Unlock()
	e, ok := h.KV[key]
	if !ok || (!e.expires.IsZero() && time.Now().After(e.expires)) {
		return nil, false
	}
	return append([]byte(nil), e.value...), true
}

// KVSet writes a key, for ttl when ttl > 0.
func (h *Host) KVSet(key string, value []byte, ttl time.Duration) {
	h.Mu.Lock()
	defer h.Mu.Unlock()
	e := kvEntry{value: append([]byte(nil), value...)}
	if ttl > 0 {
		e.expires = time.Now().Add(ttl)
	}
	h.KV[key] = e
}

// KVDelete removes a key.
func (h *Host) KVDelete(key string) {
	h.Mu.Lock()
	defer h.Mu.Unlock()
	delete(h.KV, key)
}
