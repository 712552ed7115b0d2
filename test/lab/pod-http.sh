#!/usr/bin/env bash
# One HTTP exchange of a lab pod, run by socat for each connection: answers with the pod's
# name and the client address the pod saw ("web-node1-1 203.0.113.100"; socat writes IPv6 peers in full,
# the lab canonicalises them). The request is
# read first, so that closing the socket sends FIN rather than RST.
while IFS= read -r line; do [ "${line%$'\r'}" = "" ] && break; done
peer="${SOCAT_PEERADDR#[}"
peer="${peer%]}"
body="$POD_NAME $peer"
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' "$((${#body} + 1))" "$body"
