{
  "targets": [
    {
      "target_name": "ironlb_packet",
      "sources": ["packet_socket.c", "tcp_socket.c", "udp_socket.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["packet_socket.c", "tcp_socket.c", "udp_socket.c"], "sources": ["unsupported.c"] }]
      ]
    },
    {
      "target_name": "ironlb_packet_tools",
      "sources": ["packet_socket.c", "tcp_socket.c", "udp_socket.c"],
      "defines": ["NAPI_VERSION=8", "IRONLB_TOOLS"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["packet_socket.c", "tcp_socket.c", "udp_socket.c"], "sources": ["unsupported.c"] }]
      ]
    }
  ]
}
