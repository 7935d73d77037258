module corp.example/payments/hello

go 1.21
