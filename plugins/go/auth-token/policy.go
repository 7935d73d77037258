package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	modgate "modgate.dev/sdk"
)

// The answers, word for word those of the Rust auth-token.
const (
	authRequired       = "authentication required: send a token as a Bearer token or as the password of Basic auth (.netrc or GOAUTH)"
	malformed          = "malformed Authorization header: send `Bearer <token>` or Basic auth with the token as password"
	invalidCredentials = "invalid credentials"
)

// policyConfig is the plugin's config table as written.
type policyConfig struct {
	Tokens                    []tokenConfig `json:"tokens"`
	TokensSecret              *string       `json:"tokens_secret"`
	AbstainWithoutCredentials bool          `json:"abstain_without_credentials"`
}

type tokenConfig struct {
	Name    *string  `json:"name"`
	SHA256  *string  `json:"sha256"`
	Scopes  []string `json:"scopes"`
	Modules []string `json:"modules"`
}

type token struct {
	name    string
	digest  []byte
	scopes  []string
	modules []modulePattern
}

// policy is the checked config.
type policy struct {
	tokens                    []token
	abstainWithoutCredentials bool
}

// decodeStrict decodes JSON refusing unknown fields, as serde's deny_unknown_fields does.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// newPolicy checks config and the value of its tokens_secret (a JSON list of tokens), if any.
func newPolicy(config policyConfig, secret *string) (*policy, error) {
	written := config.Tokens
	if secret != nil {
		var more []tokenConfig
		if err := decodeStrict([]byte(*secret), &more); err != nil {
			return nil, fmt.Errorf("invalid auth-token config: tokens_secret: %v", err)
		}
		written = append(written, more...)
	}
	p := &policy{abstainWithoutCredentials: config.AbstainWithoutCredentials}
	for _, t := range written {
		if t.Name == nil || t.SHA256 == nil || t.Scopes == nil || t.Modules == nil {
			return nil, errors.New("invalid auth-token config: a token needs name, sha256, scopes and modules")
		}
		name := *t.Name
		fail := func(what string) error {
			return fmt.Errorf("invalid auth-token config: token %q: %s", name, what)
		}
		if name == "" || len(name) > 128 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			return nil, fail("name must be 1 to 128 printable characters")
		}
		for _, other := range p.tokens {
			if other.name == name {
				return nil, fail("listed twice")
			}
		}
		digest, err := hex.DecodeString(*t.SHA256)
		if err != nil || len(digest) != 32 {
			return nil, fail("sha256 must be 64 hex digits")
		}
		for _, s := range t.Scopes {
			if s != "read" && s != "publish" && s != "admin" {
				return nil, fail(fmt.Sprintf("unknown scope %q (read, publish, admin)", s))
			}
		}
		var modules []modulePattern
		for _, m := range t.Modules {
			pattern, err := parsePattern(m)
			if err != nil {
				return nil, fail(err.Error())
			}
			modules = append(modules, pattern)
		}
		p.tokens = append(p.tokens, token{name: name, digest: digest, scopes: t.Scopes, modules: modules})
	}
	return p, nil
}

// decide gives the decision for f.
func (p *policy) decide(f *modgate.Facts) modgate.Decision {
	presented, found, ok := credential(f)
	switch {
	case !ok:
		return modgate.Unauthorized(malformed)
	case !found && p.abstainWithoutCredentials:
		return modgate.Abstain()
	case !found:
		return modgate.Unauthorized(authRequired)
	}
	t := p.find(presented)
	if t == nil {
		return modgate.Unauthorized(invalidCredentials)
	}
	return decideKnown("token "+t.name, t.name, t.scopes, t.modules, f)
}

// find gives the token whose digest is sha256(presented): every digest is compared in constant
// time and the loop does not stop early.
func (p *policy) find(presented string) *token {
	digest, err := modgate.Digest(modgate.SHA256, []byte(presented))
	if err != nil {
		return nil
	}
	var found *token
	for i := range p.tokens {
		if subtle.ConstantTimeCompare(p.tokens[i].digest, digest) == 1 {
			found = &p.tokens[i]
		}
	}
	return found
}

// credential gives the token of a Bearer header or the password of a Basic one (any user:
// .netrc needs one). found is false without an Authorization header; ok is false when the
// header is neither well-formed scheme.
func credential(f *modgate.Facts) (presented string, found, ok bool) {
	value, has := f.Header("authorization")
	if !has {
		return "", false, true
	}
	scheme, rest, cut := strings.Cut(strings.TrimSpace(value), " ")
	if !cut {
		return "", true, false
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "bearer"):
		if rest == "" || strings.IndexFunc(rest, unicode.IsSpace) >= 0 {
			return "", true, false
		}
		return rest, true, true
	case strings.EqualFold(scheme, "basic"):
		decoded, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || !utf8.Valid(decoded) {
			return "", true, false
		}
		_, password, cut := strings.Cut(string(decoded), ":")
		if !cut {
			return "", true, false
		}
		return password, true, true
	}
	return "", true, false
}

// decideKnown allows a caller whose credentials checked out when the action's scope is among
// scopes and the module matches one of modules, else refuses with 403 naming who and what.
func decideKnown(who, principal string, scopes []string, modules []modulePattern, f *modgate.Facts) modgate.Decision {
	needed := f.Action.String()
	covers := f.Module == ""
	for _, m := range modules {
		covers = covers || m.matches(f.Module)
	}
	allowed := false
	var held []string
	if covers {
		for _, s := range scopes {
			allowed = allowed || s == needed
			seen := false
			for _, h := range held {
				seen = seen || h == s
			}
			if !seen {
				held = append(held, s)
			}
		}
	}
	if allowed {
		return modgate.Allow(principal, held...)
	}
	target := f.Module
	if target == "" {
		target = f.Path
	}
	return modgate.Forbidden(fmt.Sprintf("%s may not %s %s", who, needed, target))
}

// modulePattern is a GOPRIVATE-style pattern: it matches a module whose path prefix with as
// many elements as the pattern matches it (path.Match), as the go command's GOPRIVATE does.
type modulePattern struct {
	glob    string
	slashes int
}

func parsePattern(pattern string) (modulePattern, error) {
	trimmed := strings.TrimRight(strings.TrimSuffix(pattern, "/..."), "/")
	if trimmed == "" {
		return modulePattern{}, fmt.Errorf("module pattern %q: empty pattern", pattern)
	}
	if _, err := path.Match(trimmed, ""); err != nil {
		return modulePattern{}, fmt.Errorf("module pattern %q: %v", pattern, err)
	}
	return modulePattern{glob: trimmed, slashes: strings.Count(trimmed, "/")}, nil
}

func (p modulePattern) matches(module string) bool {
	prefix := module
	n := 0
	for i := 0; i < len(module); i++ {
		if module[i] == '/' {
			if n == p.slashes {
				prefix = module[:i]
				break
			}
			n++
		}
	}
	if strings.Count(prefix, "/") != p.slashes {
		return false
	}
	ok, _ := path.Match(p.glob, prefix)
	return ok
}
