module oneinfra.test/pause

go 1.24
