// Package handlers keeps the handlers a plugin registers (through the SDK's authorizer and
// router packages) and runs them for the host's calls: the generated export glue calls it
// in a modgate host, package modgatetest natively. A panic in a handler becomes a fail-closed
// answer with the panic logged, never a trap.
package handlers

import (
	"runtime/debug"

	modgate "modgate.dev/sdk"
)

var (
	authorize func(modgate.Facts) modgate.Decision
	route     func(modgate.Facts) (string, bool)
)

// SetAuthorizer registers the plugin's authorize handler (once).
func SetAuthorizer(f func(modgate.Facts) modgate.Decision) {
	if authorize != nil {
		panic("modgate: authorizer.Handle called twice")
	}
	authorize = f
}

// SetRouter registers the plugin's route handler (once).
func SetRouter(f func(modgate.Facts) (string, bool)) {
	if route != nil {
		panic("modgate: router.Handle called twice")
	}
	route = f
}

// Failed is the status of the decision that stands for a handler that panicked or a plugin
// without a handler: the host answers the client with it, as for a plugin that failed.
const Failed = 503

// PanickedRoute is the route a router that panicked answers: no configured route has this
// name (route names are TOML keys without spaces), so the host fails the request closed.
const PanickedRoute = "modgate sdk: the router panicked"

// CallAuthorize runs the authorize handler for f.
func CallAuthorize(f modgate.Facts) (d modgate.Decision) {
	defer func() {
		if r := recover(); r != nil {
			modgate.Errorf("panic in the authorize handler: %v\n%s", r, debug.Stack())
			d = modgate.Deny(Failed, "authorization failed: the auth plugin panicked (see the server log)")
		}
	}()
	if authorize == nil {
		modgate.Errorf("the plugin registered no authorize handler (call authorizer.Handle in an init function)")
		return modgate.Deny(Failed, "authorization failed: the auth plugin has no handler (see the server log)")
	}
	return authorize(f)
}

// CallRoute runs the route handler for f.
func CallRoute(f modgate.Facts) (name string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			modgate.Errorf("panic in the route handler: %v\n%s", r, debug.Stack())
			name, ok = PanickedRoute, true
		}
	}()
	if route == nil {
		modgate.Errorf("the plugin registered no route handler (call router.Handle in an init function)")
		return PanickedRoute, true
	}
	return route(f)
}
