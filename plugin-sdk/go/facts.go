package modgate

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"
)

// Action is what a request is trying to do.
type Action uint8

const (
	// Read is a download: list, .info, .mod, .zip, @latest, sumdb.
	Read Action = iota
	// Publish is an upload of a module version (modgate publish, an authenticated PUT).
	Publish
	// Admin is a call to an admin endpoint (reload, purge, …).
	Admin
)

// String gives the action as the modgate config spells it ("read", "publish", "admin").
func (a Action) String() string {
	switch a {
	case Read:
		return "read"
	case Publish:
		return "publish"
	case Admin:
		return "admin"
	}
	return "unknown"
}

// Header is one request header: the name in lower case, the value as received.
type Header struct {
	Name, Value string
}

// Facts are what modgate knows about a request before any plugin runs. The host has decoded
// and checked them: Module is a valid Go module path, Version a canonical version.
type Facts struct {
	// Method is the HTTP method, upper case (GET, HEAD, PUT).
	Method string
	// Path is the request path as received, still escaped (/github.com/!azure/x/@v/list).
	Path string
	// Module is the module path, unescaped; empty when the request names no module.
	Module string
	// Version is the canonical version; empty when the request names none.
	Version string
	Action  Action
	// Headers are the request headers in the order received, names in lower case.
	Headers []Header
	// PeerAddr is the client's address, ip:port.
	PeerAddr string
	// TLSClientIdentity is the subject of the client certificate mutual TLS verified; empty
	// without one.
	TLSClientIdentity string
}

// Header gives the first value of the header name (any case), and whether it was sent.
func (f *Facts) Header(name string) (string, bool) {
	for _, h := range f.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// BearerToken gives the token of an "Authorization: Bearer …" header (what GOAUTH sends).
func (f *Facts) BearerToken() (string, bool) {
	auth, ok := f.Header("authorization")
	if !ok || len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return "", false
	}
	token := strings.TrimSpace(auth[7:])
	return token, token != ""
}

// BasicAuth gives the user and password of an "Authorization: Basic …" header (what the go
// command sends from .netrc).
func (f *Facts) BasicAuth() (user, password string, ok bool) {
	auth, found := f.Header("authorization")
	if !found || len(auth) < 6 || !strings.EqualFold(auth[:6], "basic ") {
		return "", "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[6:]))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(decoded), ":")
	return user, password, ok
}

// PeerIP is the client's IP address (PeerAddr without the port).
func (f *Facts) PeerIP() net.IP {
	host, _, err := net.SplitHostPort(f.PeerAddr)
	if err != nil {
		host = f.PeerAddr
	}
	return net.ParseIP(host)
}

type decisionKind uint8

const (
	abstain decisionKind = iota
	allow
	deny
)

// Decision is an authorizer's answer: Allow, Deny or Abstain. The zero Decision abstains.
type Decision struct {
	kind      decisionKind
	principal string
	scopes    []string
	status    uint16
	message   string
}

// Allow lets the request through on behalf of principal (shown in the access log) with the
// given scopes.
func Allow(principal string, scopes ...string) Decision {
	return Decision{kind: allow, principal: principal, scopes: scopes}
}

// Deny refuses the request with status (401: who are you?, 403: not you, 404: to hide that a
// module exists) and one line for the client.
func Deny(status uint16, message string) Decision {
	return Decision{kind: deny, status: status, message: message}
}

// Unauthorized is Deny(401, message).
func Unauthorized(message string) Decision { return Deny(401, message) }

// Forbidden is Deny(403, message).
func Forbidden(message string) Decision { return Deny(403, message) }

// Abstain leaves the decision to the next plugin on the route (when all abstain: 401).
func Abstain() Decision { return Decision{} }

// IsAllow reports whether d allows, and on whose behalf with which scopes.
func (d Decision) IsAllow() (principal string, scopes []string, ok bool) {
	return d.principal, d.scopes, d.kind == allow
}

// IsDeny reports whether d denies, and with which status and message.
func (d Decision) IsDeny() (status uint16, message string, ok bool) {
	return d.status, d.message, d.kind == deny
}

// IsAbstain reports whether d abstains.
func (d Decision) IsAbstain() bool { return d.kind == abstain }

// String describes d: "allow alice [read]", "deny 403 not yours", "abstain".
func (d Decision) String() string {
	switch d.kind {
	case allow:
		return "allow " + d.principal + " [" + strings.Join(d.scopes, " ") + "]"
	case deny:
		return "deny " + strconv.Itoa(int(d.status)) + " " + d.message
	}
	return "abstain"
}
