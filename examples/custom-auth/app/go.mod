module example.com/app

go 1.21

require corp.example/payments/hello v1.0.0
