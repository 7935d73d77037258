//go:build wasip1

package router

// The router world's export glue: linked only into plugins that import this package.
import _ "modgate.dev/sdk/internal/wit/exports/router"
