// Package router makes a Go program a modgate routing plugin (the router world): it picks
// the [[route]] that serves a request, by name.
//
//	func init() {
//		router.Handle(func(f modgate.Facts) (string, bool) {
//			tenant, ok := f.Header("x-tenant")
//			return "tenant-" + tenant, ok
//		})
//	}
//
//	func main() {}
package router

import (
	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/internal/handlers"
)

// Handle registers the function modgate calls once per request: it returns a route name, or
// false to let the TOML [[route]] patterns decide. Call it once, from an init function. A panic
// in f is logged and the request fails closed.
func Handle(f func(modgate.Facts) (route string, ok bool)) { handlers.SetRouter(f) }
