// auth-token in Go: the decisions of the Rust auth-token plugin (tokens hashed at rest with
// sha256, sent as `Authorization: Bearer <token>` or as the password of Basic auth, each with
// scopes and module patterns), written with the Go SDK. The same auth matrix runs against both
// components (host/src/plugin/first_party_tests.rs).
package main

import (
	"time"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/authorizer"
)

// The config and secret cannot change during an instance's life (a reload makes new
// instances), so a reused instance checks them once.
var (
	loaded  *policy
	problem error
)

func load() (*policy, error) {
	var config policyConfig
	if err := decodeStrict([]byte(modgate.ConfigJSON()), &config); err != nil {
		return nil, err
	}
	var secret *string
	if config.TokensSecret != nil {
		value, err := modgate.Secret(*config.TokensSecret)
		if err != nil {
			return nil, err
		}
		secret = &value
	}
	return newPolicy(config, secret)
}

func init() {
	authorizer.Handle(func(f modgate.Facts) modgate.Decision {
		if loaded == nil && problem == nil {
			loaded, problem = load()
		}
		if problem != nil {
			modgate.Errorf("%v", problem)
			return modgate.Deny(500, "auth-token: invalid plugin config (see the server log)")
		}
		// The decision depends on the Authorization header, the module and the action only
		// (and the config and secret, which only a reload changes).
		modgate.Remember(modgate.DependsOn{Headers: []string{"authorization"}, Module: true, Action: true}, time.Hour)
		return loaded.decide(&f)
	})
}

func main() {}
