//go:build !wasip1

package modgate

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"time"

	"modgate.dev/sdk/internal/fake"
)

// The host interfaces natively (go test): a fake host, set up with package modgatetest.

func hostLog(level Level, message string) {
	h := fake.The
	h.Mu.Lock()
	defer h.Mu.Unlock()
	h.Logs = append(h.Logs, fake.Entry{Level: uint8(level), Message: message})
}

func hostConfigJSON() string {
	h := fake.The
	h.Mu.Lock()
	defer h.Mu.Unlock()
	return h.Config
}

func hostKVGet(key string) ([]byte, bool) { return fake.The.KVGet(key) }

func hostKVSet(key string, value []byte, ttl time.Duration) { fake.The.KVSet(key, value, ttl) }

func hostKVDelete(key string) { fake.The.KVDelete(key) }

func hostSecret(name string) (string, error) {
	h := fake.The
	h.Mu.Lock()
	defer h.Mu.Unlock()
	if h.Granted != nil && !h.Granted[name] {
		return "", fmt.Errorf("%q: %w", name, ErrSecretNotGranted)
	}
	v, ok := h.Secrets[name]
	if !ok {
		return "", fmt.Errorf("%q: %w", name, ErrSecretNotFound)
	}
	return v, nil
}

func hostSend(req HTTPRequest) (HTTPResponse, error) {
	h := fake.The
	h.Mu.Lock()
	send := h.HTTP
	h.Mu.Unlock()
	if send == nil {
		return HTTPResponse{}, &HTTPError{Kind: "not-granted", Message: req.URL + " (the test host grants no HTTP)"}
	}
	headers := make([][2]string, len(req.Headers))
	for i, hd := range req.Headers {
		headers[i] = [2]string{hd.Name, hd.Value}
	}
	resp, err := send(fake.Request{Method: req.Method, URL: req.URL, Headers: headers, Body: req.Body})
	if err != nil {
		var he *HTTPError
		if errors.As(err, &he) {
			return HTTPResponse{}, he
		}
		return HTTPResponse{}, &HTTPError{Kind: "failed", Message: err.Error()}
	}
	out := HTTPResponse{Status: resp.Status, Body: resp.Body}
	for _, hd := range resp.Headers {
		out.Headers = append(out.Headers, Header{Name: hd[0], Value: hd[1]})
	}
	return out, nil
}

func hostRemember(on DependsOn, ttlMs uint32) {
	h := fake.The
	h.Mu.Lock()
	defer h.Mu.Unlock()
	h.Remembered = &fake.Memo{
		Method: on.Method, Path: on.Path, Module: on.Module, Version: on.Version,
		Action: on.Action, PeerIP: on.PeerIP, TLSClientIdentity: on.TLSClientIdentity,
		Headers: append([]string(nil), on.Headers...), TTLMs: ttlMs,
	}
}

func hostApplyLimits(limits []Limit) error {
	h := fake.The
	h.Mu.Lock()
	defer h.Mu.Unlock()
	h.Limits = h.Limits[:0]
	for _, l := range limits {
		subject := [...]string{"principal", "ip", "module"}
		s := "key " + l.Subject.key
		if int(l.Subject.kind) < len(subject) {
			s = subject[l.Subject.kind]
		}
		h.Limits = append(h.Limits, fake.Limit{
			Name: l.Name, Subject: s, RequestsPerSecond: l.RequestsPerSecond,
			Burst: l.Burst, BytesPerDay: l.BytesPerDay,
		})
	}
	return nil
}

func newHash(h Hash) func() hash.Hash {
	switch h {
	case SHA384:
		return sha512.New384
	case SHA512:
		return sha512.New
	}
	return sha256.New
}

func hostDigest(h Hash, data []byte) ([]byte, error) {
	d := newHash(h)()
	d.Write(data)
	return d.Sum(nil), nil
}

func hostHMAC(h Hash, key, data []byte) ([]byte, error) {
	m := hmac.New(newHash(h), key)
	m.Write(data)
	return m.Sum(nil), nil
}

func hostHMACVerify(h Hash, key, data, tag []byte) (bool, error) {
	m := hmac.New(newHash(h), key)
	m.Write(data)
	return hmac.Equal(m.Sum(nil), tag), nil
}

type hostKey = struct{}

func hostParseKey(Algorithm, string, []byte) (hostKey, error) {
	return hostKey{}, ErrCryptoUnavailable
}

func hostVerify(hostKey, []byte, []byte) (bool, error) { return false, ErrCryptoUnavailable }
