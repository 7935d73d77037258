//go:build wasip1

package handlers

import (
	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/internal/wit/imports/modgate_plugin_types"
	witRuntime "modgate.dev/sdk/internal/wit/runtime"
	witTypes "modgate.dev/sdk/internal/wit/types"
)

// The functions the generated export glue calls (it imports this package as
// export_wit_world), on the generated types.

func facts(req modgate_plugin_types.RequestFacts) modgate.Facts {
	headers := make([]modgate.Header, len(req.Headers))
	for i, h := range req.Headers {
		headers[i] = modgate.Header{Name: h.F0, Value: h.F1}
	}
	return modgate.Facts{
		Method:            req.Method,
		Path:              req.Path,
		Module:            req.Module.SomeOr(""),
		Version:           req.Version.SomeOr(""),
		Action:            modgate.Action(req.Action),
		Headers:           headers,
		PeerAddr:          req.PeerAddr,
		TLSClientIdentity: req.TlsClientIdentity.SomeOr(""),
	}
}

// Authorize is the authorizer world's export.
func Authorize(req modgate_plugin_types.RequestFacts) modgate_plugin_types.Decision {
	defer witRuntime.AfterExport()
	d := CallAuthorize(facts(req))
	if principal, scopes, ok := d.IsAllow(); ok {
		if scopes == nil {
			scopes = []string{}
		}
		return modgate_plugin_types.MakeDecisionAllow(modgate_plugin_types.Allow{Principal: principal, Scopes: scopes})
	}
	if status, message, ok := d.IsDeny(); ok {
		return modgate_plugin_types.MakeDecisionDeny(modgate_plugin_types.Deny{Status: status, Message: message})
	}
	return modgate_plugin_types.MakeDecisionAbstain()
}

// Route is the router world's export.
func Route(req modgate_plugin_types.RequestFacts) witTypes.Option[string] {
	defer witRuntime.AfterExport()
	if name, ok := CallRoute(facts(req)); ok {
		return witTypes.Some(name)
	}
	return witTypes.None[string]()
}
