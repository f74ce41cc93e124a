// helmapp serves $MESSAGE; `helmapp hook` is the chart's pre-install and
// pre-upgrade hook: it prints a line and exits 0.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hook" {
		fmt.Println("helmapp hook: ran for revision", os.Getenv("REVISION"))
		return
	}
	msg := os.Getenv("MESSAGE")
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, msg) })
	fmt.Println("helmapp: serving", msg)
	_ = http.ListenAndServe(":8080", nil)
}
