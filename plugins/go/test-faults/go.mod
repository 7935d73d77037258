module modgate.dev/plugins/test-faults

go 1.25

require modgate.dev/sdk v0.0.0

replace modgate.dev/sdk => ../../../plugin-sdk/go
