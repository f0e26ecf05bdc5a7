module github.com/dagger-sandbox/dagger-sandbox/clients/go

go 1.19
