package modgate

// Subject says whose counter a Limit charges; the host fills in the value per request.
type Subject struct {
	kind uint8
	key  string
}

// The subjects a limit can count per.
var (
	// PerPrincipal: the principal the route's auth allowed (requests no plugin allowed are not
	// charged; limit those PerPeerIP).
	PerPrincipal = Subject{kind: 0}
	// PerPeerIP: the client's IP address.
	PerPeerIP = Subject{kind: 1}
	// PerModule: the requested module path (requests naming no module are not charged).
	PerModule = Subject{kind: 2}
)

// PerKey is one counter shared by every request given the same key (a module pattern, a
// tenant read from a header, "everyone").
func PerKey(key string) Subject { return Subject{kind: 3, key: key} }

// Limit is a rate limit, a daily byte quota, or both, counted and enforced by the host.
type Limit struct {
	// Name names the limit in the 429 message, metrics and logs (1 to 64 bytes of
	// [A-Za-z0-9._-]).
	Name    string
	Subject Subject
	// RequestsPerSecond is the sustained rate of a token bucket (0: no request limit).
	RequestsPerSecond float64
	// Burst is the number of requests allowed at once (0: one second's worth).
	Burst uint32
	// BytesPerDay is a quota of response bytes per UTC day (0: none).
	BytesPerDay uint64
}

// ApplyLimits charges this request, during an authorize call, against limits (at most 16); so
// is every request the host gives this answer again through Remember. The host counts and
// answers 429 with Retry-After once one is exhausted, whatever the plugins decide. The last
// call during a call counts. An invalid limit is refused with the reason, and then none of
// the list applies. Natively (go test) the limits are recorded by the fake host
// (modgatetest.Limits).
func ApplyLimits(limits ...Limit) error { return hostApplyLimits(limits) }
