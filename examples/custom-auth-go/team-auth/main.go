// team-auth: a modgate auth plugin. Each team has a token (kept in the config only as its
// sha256), the module paths it may download and the client networks it may download from.
package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/authorizer"
)

// Config is the plugin's `config` table in modgate.toml.
type Config struct {
	Teams []Team `json:"teams"`
	// TrustedProxies are reverse proxies whose X-Forwarded-For header is believed. None by
	// default: anyone can send that header, so only a proxy you run may tell us who its
	// client is.
	TrustedProxies []netip.Prefix `json:"trusted_proxies"`
}

// Team is one [[plugins.team-auth.config.teams]] entry.
type Team struct {
	Name string `json:"name"`
	// SHA256 is the sha256 of the team's token in lower-case hex (printf %s TOKEN | sha256sum).
	SHA256 string `json:"sha256"`
	// Modules are module path prefixes, as in GOPRIVATE: corp.example/payments covers itself
	// and everything below it.
	Modules []string `json:"modules"`
	// Networks are the client networks the team may download from (10.20.0.0/16, ::1/128).
	Networks []netip.Prefix `json:"networks"`
}

func init() {
	authorizer.Handle(func(f modgate.Facts) modgate.Decision {
		config, err := load()
		if err != nil {
			modgate.Errorf("%v", err)
			// Fail closed, and keep the details for the operator.
			return modgate.Forbidden("team-auth: invalid config (see the server log)")
		}
		decision := decide(config, &f)
		if _, message, denied := decision.IsDeny(); denied {
			// Into modgate's log, tagged with this plugin's name.
			modgate.Warnf("%s %s: %s", f.PeerAddr, f.Path, message)
		} else if _, _, allowed := decision.IsAllow(); allowed {
			// The same credentials, client and module get the same answer until a reload:
			// modgate may give it again without calling the plugin.
			modgate.Remember(modgate.DependsOn{
				Headers: []string{"authorization", "x-forwarded-for"},
				PeerIP:  true, Module: true, Action: true,
			}, time.Minute)
		}
		return decision
	})
}

func main() {}

// modgate reuses an instance for many requests and makes new ones on a reload, so the config
// is read and checked once per instance.
var (
	loaded  *Config
	problem error
)

func load() (*Config, error) {
	if loaded == nil && problem == nil {
		loaded, problem = parse(modgate.ConfigJSON())
	}
	return loaded, problem
}

func parse(configJSON string) (*Config, error) {
	var config Config
	decoder := json.NewDecoder(strings.NewReader(configJSON))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&config); err != nil {
		return nil, fmt.Errorf("plugin config: %w", err)
	}
	for _, team := range config.Teams {
		if len(team.SHA256) != 64 || strings.Trim(team.SHA256, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("team %s: `sha256` must be 64 lower-case hex digits", team.Name)
		}
	}
	return &config, nil
}

// decide is the decision: who (the token), from where (the client address), what (the
// module). It calls nothing of modgate's, so go test can run it natively.
func decide(config *Config, f *modgate.Facts) modgate.Decision {
	// Authorization: Bearer TOKEN from a GOAUTH command, or Basic auth with the token as
	// password from a .netrc entry (the login is ignored).
	token, ok := f.BearerToken()
	if !ok {
		_, token, ok = f.BasicAuth()
	}
	if !ok {
		// No credentials: not ours to decide (when every plugin abstains, modgate answers 401).
		return modgate.Abstain()
	}
	sum := sha256.Sum256([]byte(token))
	hash := []byte(hex.EncodeToString(sum[:]))
	var team *Team
	for i := range config.Teams {
		// ConstantTimeCompare takes as long for a near miss as for a far one: timing tells
		// an attacker nothing.
		if subtle.ConstantTimeCompare([]byte(config.Teams[i].SHA256), hash) == 1 {
			team = &config.Teams[i]
			break
		}
	}
	if team == nil {
		// The same answer for every module, so a stranger learns nothing about what exists.
		return modgate.Unauthorized("invalid credentials")
	}

	client, ok := clientIP(config, f)
	if !ok {
		return modgate.Deny(400, "team-auth: unreadable client address")
	}
	if !inAny(team.Networks, client) {
		return modgate.Forbidden(fmt.Sprintf("team %s may not download from %s", team.Name, client))
	}

	if f.Action != modgate.Read {
		return modgate.Forbidden("team-auth allows downloads only")
	}
	// Requests that name no module (checksum database lookups) need only a valid token.
	if f.Module != "" && !slices.ContainsFunc(team.Modules, func(prefix string) bool {
		return covers(prefix, f.Module)
	}) {
		return modgate.Forbidden(fmt.Sprintf("team %s may not download %s", team.Name, f.Module))
	}
	return modgate.Allow(team.Name, "read")
}

// clientIP is the client's address: the TCP peer, or, when the peer is a trusted proxy, the
// address that proxy put in X-Forwarded-For (walking right to left past further trusted
// proxies).
func clientIP(config *Config, f *modgate.Facts) (netip.Addr, bool) {
	peer, err := netip.ParseAddrPort(f.PeerAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	// A dual-stack listener ([::]:8443) sees an IPv4 client 10.1.2.3 as ::ffff:10.1.2.3;
	// Unmap turns that back into 10.1.2.3 so IPv4 networks match it.
	ip := peer.Addr().Unmap()
	var hops []string
	for _, h := range f.Headers {
		if h.Name == "x-forwarded-for" {
			hops = append(hops, strings.Split(h.Value, ",")...)
		}
	}
	for inAny(config.TrustedProxies, ip) && len(hops) > 0 {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1]))
		if err != nil {
			return netip.Addr{}, false
		}
		ip, hops = hop.Unmap(), hops[:len(hops)-1]
	}
	return ip, true
}

func inAny(networks []netip.Prefix, ip netip.Addr) bool {
	return slices.ContainsFunc(networks, func(n netip.Prefix) bool { return n.Contains(ip) })
}

// covers reports whether the GOPRIVATE-style prefix covers module: the same path or a path
// below it (corp.example/payments covers corp.example/payments/hello, not
// corp.example/paymentsx).
func covers(prefix, module string) bool {
	rest, found := strings.CutPrefix(module, prefix)
	return found && (rest == "" || rest[0] == '/')
}
