// Package modgate is the Go SDK for modgate plugins: sandboxed WebAssembly components that make
// modgate's decisions (who may do what, which route serves a request).
//
// A plugin is a Go main package that registers a handler from an init function, in the package
// of the world it implements (authorizer, router), and leaves main empty:
//
//	package main
//
//	import (
//		modgate "modgate.dev/sdk"
//		"modgate.dev/sdk/authorizer"
//	)
//
//	func init() {
//		authorizer.Handle(func(f modgate.Facts) modgate.Decision {
//			switch token, ok := f.BearerToken(); {
//			case !ok:
//				return modgate.Abstain()
//			case token == "friend":
//				return modgate.Allow("friend", "read")
//			default:
//				return modgate.Forbidden("forbidden")
//			}
//		})
//	}
//
//	func main() {}
//
// `modgate plugin build` in the plugin's module makes the component (Go ≥ 1.25 and the modgate
// binary are all it needs); `modgate plugin test` runs it under the host's runtime.
//
// The plugin sees no files, network or environment. What it may reach is granted per plugin
// in the modgate TOML file and used through this package: Log, Config, the key-value cache
// (KVGet, KVSet), Secret, outbound HTTP (Send), Remember (so modgate may reuse an answer
// without calling the plugin) and native cryptography (Digest, HMAC, Key.Verify).
//
// Natively (go test), these talk to a fake host that package modgatetest sets up, and
// modgatetest.Authorize calls a plugin's handler the way modgate does.
package modgate
