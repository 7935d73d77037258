//go:build wasip1

package authorizer

// The authorizer world's export glue: linked only into plugins that import this package.
import _ "modgate.dev/sdk/internal/wit/exports/authorizer"
