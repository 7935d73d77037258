// Package index is the search team's private module in the custom-auth walkthrough.
package index

// Name names the module.
const Name = "search index"
