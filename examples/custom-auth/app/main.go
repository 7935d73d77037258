// A program that uses the payments team's private module.
package main

import (
	"fmt"

	"corp.example/payments/hello"
)

func main() {
	fmt.Println(hello.Greeting())
}
