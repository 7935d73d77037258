// Package hello is the payments team's private module in the custom-auth walkthrough.
package hello

// Greeting says who served it.
func Greeting() string {
	return "Hello from the payments team, served by modgate!"
}
