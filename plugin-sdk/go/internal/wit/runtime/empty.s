//go:build wasip1

