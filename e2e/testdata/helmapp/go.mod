module example.com/helmapp

go 1.26
