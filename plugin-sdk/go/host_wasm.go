//go:build wasip1

package modgate

import (
	"errors"
	"fmt"
	"time"

	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_config"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_crypto"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_http"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_kv"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_limits"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_log"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_memo"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_secrets"
	witTypes "modgate.dev/sdk/internal/wit/types"
)

// The host interfaces, through the generated bindings (in a modgate host).

func hostLog(level Level, message string) { modgate_plugin_log.Log(uint8(level), message) }

func hostConfigJSON() string { return modgate_plugin_config.GetJson() }

func hostKVGet(key string) ([]byte, bool) {
	v := modgate_plugin_kv.Get(key)
	if v.IsNone() {
		return nil, false
	}
	return v.Some(), true
}

func hostKVSet(key string, value []byte, ttl time.Duration) {
	opt := witTypes.None[uint64]()
	if ttl > 0 {
		opt = witTypes.Some(uint64(ttl.Milliseconds()))
	}
	modgate_plugin_kv.Set(key, value, opt)
}

func hostKVDelete(key string) { modgate_plugin_kv.Delete(key) }

func hostSecret(name string) (string, error) {
	r := modgate_plugin_secrets.Get(name)
	if r.IsOk() {
		return r.Ok(), nil
	}
	if r.Err().Tag() == modgate_plugin_secrets.Error_NotGranted {
		return "", fmt.Errorf("%q: %w", name, ErrSecretNotGranted)
	}
	return "", fmt.Errorf("%q: %w", name, ErrSecretNotFound)
}

func toTuples(headers []Header) []witTypes.Tuple2[string, string] {
	out := make([]witTypes.Tuple2[string, string], len(headers))
	for i, h := range headers {
		out[i] = witTypes.Tuple2[string, string]{F0: h.Name, F1: h.Value}
	}
	return out
}

func fromTuples(tuples []witTypes.Tuple2[string, string]) []Header {
	out := make([]Header, len(tuples))
	for i, t := range tuples {
		out[i] = Header{Name: t.F0, Value: t.F1}
	}
	return out
}

func hostSend(req HTTPRequest) (HTTPResponse, error) {
	r := modgate_plugin_http.Send(modgate_plugin_http.Request{
		Method:  req.Method,
		Url:     req.URL,
		Headers: toTuples(req.Headers),
		Body:    req.Body,
	})
	if r.IsOk() {
		resp := r.Ok()
		return HTTPResponse{Status: resp.Status, Headers: fromTuples(resp.Headers), Body: resp.Body}, nil
	}
	e := r.Err()
	switch e.Tag() {
	case modgate_plugin_http.Error_NotGranted:
		return HTTPResponse{}, &HTTPError{Kind: "not-granted", Message: e.NotGranted()}
	case modgate_plugin_http.Error_InvalidRequest:
		return HTTPResponse{}, &HTTPError{Kind: "invalid-request", Message: e.InvalidRequest()}
	case modgate_plugin_http.Error_Failed:
		return HTTPResponse{}, &HTTPError{Kind: "failed", Message: e.Failed()}
	}
	return HTTPResponse{}, &HTTPError{Kind: "timeout"}
}

func hostRemember(on DependsOn, ttlMs uint32) {
	modgate_plugin_memo.Remember(modgate_plugin_memo.DependsOn{
		Method:            on.Method,
		Path:              on.Path,
		Module:            on.Module,
		Version:           on.Version,
		Action:            on.Action,
		PeerIp:            on.PeerIP,
		TlsClientIdentity: on.TLSClientIdentity,
		Headers:           on.Headers,
	}, ttlMs)
}

func hostApplyLimits(limits []Limit) error {
	wit := make([]modgate_plugin_limits.Limit, len(limits))
	for i, l := range limits {
		w := modgate_plugin_limits.Limit{Name: l.Name}
		switch l.Subject.kind {
		case 0:
			w.Subject = modgate_plugin_limits.MakeSubjectPrincipal()
		case 1:
			w.Subject = modgate_plugin_limits.MakeSubjectPeerIp()
		case 2:
			w.Subject = modgate_plugin_limits.MakeSubjectModule()
		default:
			w.Subject = modgate_plugin_limits.MakeSubjectKey(l.Subject.key)
		}
		if l.RequestsPerSecond != 0 {
			w.RequestsPerSecond = witTypes.Some(l.RequestsPerSecond)
		}
		if l.Burst != 0 {
			w.Burst = witTypes.Some(l.Burst)
		}
		if l.BytesPerDay != 0 {
			w.BytesPerDay = witTypes.Some(l.BytesPerDay)
		}
		wit[i] = w
	}
	if r := modgate_plugin_limits.Apply(wit); r.IsErr() {
		return errors.New("limits: " + r.Err())
	}
	return nil
}

func cryptoError(e modgate_plugin_crypto.Error) error {
	switch e.Tag() {
	case modgate_plugin_crypto.Error_TooLarge:
		return fmt.Errorf("crypto: input too large (the host takes at most %d bytes)", e.TooLarge())
	case modgate_plugin_crypto.Error_InvalidKey:
		return errors.New("crypto: invalid key: " + e.InvalidKey())
	}
	return fmt.Errorf("crypto: too many keys (at most %d per instance)", e.TooManyKeys())
}

func hostDigest(h Hash, data []byte) ([]byte, error) {
	r := modgate_plugin_crypto.Digest(uint8(h), data)
	if r.IsErr() {
		return nil, cryptoError(r.Err())
	}
	return r.Ok(), nil
}

func hostHMAC(h Hash, key, data []byte) ([]byte, error) {
	r := modgate_plugin_crypto.Hmac(uint8(h), key, data)
	if r.IsErr() {
		return nil, cryptoError(r.Err())
	}
	return r.Ok(), nil
}

func hostHMACVerify(h Hash, key, data, tag []byte) (bool, error) {
	r := modgate_plugin_crypto.HmacVerify(uint8(h), key, data, tag)
	if r.IsErr() {
		return false, cryptoError(r.Err())
	}
	return r.Ok(), nil
}

type hostKey = *modgate_plugin_crypto.PublicKey

func hostParseKey(alg Algorithm, jwk string, der []byte) (hostKey, error) {
	data := modgate_plugin_crypto.MakeKeyDataJwk(jwk)
	if der != nil {
		data = modgate_plugin_crypto.MakeKeyDataSpkiDer(der)
	}
	r := modgate_plugin_crypto.PublicKeyParse(uint8(alg), data)
	if r.IsErr() {
		return nil, cryptoError(r.Err())
	}
	return r.Ok(), nil
}

func hostVerify(k hostKey, message, signature []byte) (bool, error) {
	r := k.Verify(message, signature)
	if r.IsErr() {
		return false, cryptoError(r.Err())
	}
	return r.Ok(), nil
}
