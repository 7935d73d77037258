// test-faults: a Go test plugin that misbehaves on request (header x-fault), for the host's
// fault matrix of Go plugins (host/src/plugin/tests.rs).
//
//	count    allow, principal "call-N": the Nth call this instance has served
//	panic    panic (the SDK answers 503 and the host replaces the instance)
//	loop     never return (the deadline)
//	membomb  allocate without bound (the memory cap)
//	remember count, and call memo.remember (one host import with a list of strings)
//	digest   count, and an HMAC of 20 bytes in the host (one host import with a list result;
//	         a short Digest is computed in the plugin)
//	imports  use the host's imports with large results (kv, http, crypto), then allow: the
//	         regression case for the GC trap inside cabi_realloc
package main

import (
	"strconv"

	modgate "modgate.dev/sdk"
	"modgate.dev/sdk/authorizer"
)

var (
	calls int
	sink  [][]byte
	big   = make([]byte, 32<<10)
)

func init() {
	authorizer.Handle(func(f modgate.Facts) modgate.Decision {
		calls++
		fault, _ := f.Header("x-fault")
		switch fault {
		case "panic":
			panic("go-faults: asked to panic")
		case "loop":
			for {
				calls++
			}
		case "membomb":
			for {
				sink = append(sink, make([]byte, 1<<20))
			}
		case "remember":
			modgate.Remember(modgate.DependsOn{Headers: []string{"authorization"}, Module: true, Action: true}, 0)
		case "digest":
			if _, err := modgate.HMAC(modgate.SHA256, []byte("key"), []byte("twenty bytes of data")); err != nil {
				return modgate.Deny(500, "digest failed")
			}
		case "imports":
			if _, ok := modgate.KVGet("big"); !ok {
				modgate.KVSet("big", big, 0)
			}
			value, ok := modgate.KVGet("big")
			if !ok || len(value) != len(big) {
				return modgate.Deny(500, "kv lost the value")
			}
			if _, err := modgate.Get("http://not-granted.invalid/x"); err == nil {
				return modgate.Deny(500, "an ungranted host was reached")
			}
			sum, err := modgate.Digest(modgate.SHA256, value[:1024])
			if err != nil || len(sum) != 32 {
				return modgate.Deny(500, "digest failed")
			}
			// The facts' headers are large too: touch them all.
			n := 0
			for _, h := range f.Headers {
				n += len(h.Value)
			}
			return modgate.Allow("imports", strconv.Itoa(n))
		}
		return modgate.Allow("call-" + strconv.Itoa(calls))
	})
}

func main() {}
