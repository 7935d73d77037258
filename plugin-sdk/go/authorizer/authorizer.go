// Package authorizer makes a Go program a modgate auth plugin (the authorizer world).
//
//	func init() {
//		authorizer.Handle(func(f modgate.Facts) modgate.Decision {
//			if token, ok := f.BearerToken(); ok && token == "friend" {
//				return modgate.Allow("friend", "read")
//			}
//			return modgate.Abstain()
//		})
//	}
//
//	func main() {}
//
// Build it with `modgate plugin build`.
package authorizer

import (
	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/internal/handlers"
)

// Handle registers the function modgate calls once per request to decide about it. Call it
// once, from an init function.
//
// Instances are reused for many calls, one call at a time each: package variables are fine
// for what is fixed for the instance's life (the parsed config), but nothing about one request
// may leak into the answer to another. A panic in f is logged and the request refused with
// 503, as for a plugin that failed.
func Handle(f func(modgate.Facts) modgate.Decision) { handlers.SetAuthorizer(f) }
