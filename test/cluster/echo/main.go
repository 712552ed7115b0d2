// The lab's echo server: answers every HTTP request with the pod's name, its node and the
// client address it saw, so that a curl from the LAN shows which pod answered and whether
// the client's address survived (externalTrafficPolicy: Local) or was masqueraded
// (Cluster). Standard library only; built into a static binary at lab time.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	pod := os.Getenv("POD_NAME")
	node := os.Getenv("NODE_NAME")
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		client, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			client = r.RemoteAddr
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "pod=%s node=%s client=%s\n", pod, node, client)
	})
	log.Printf("echo: pod %s on %s listening on :%s", pod, node, port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
