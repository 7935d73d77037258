module corp.example/search/index

go 1.21
