module modgate.dev/sdk

go 1.25
