/* SPDX-License-Identifier: MIT */
/*
 * The peer of the tcp-echo workload: a plain, single-threaded,
 * edge-triggered epoll echo server in C, written for the comparison
 * (BENCHMARKS.md). Serves until killed:  epoll_echo -p PORT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(2);
}

int main(int argc, char **argv) {
  int port = (argc == 3 && strcmp(argv[1], "-p") == 0) ? atoi(argv[2]) : 0;
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l < 0) die("socket");
  int one = 1;
  if (setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
    die("setsockopt");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0) die("bind");
  if (listen(l, SOMAXCONN) != 0) die("listen");
  socklen_t len = sizeof(sa);
  if (getsockname(l, (struct sockaddr *)&sa, &len) != 0) die("getsockname");
  printf("epoll_echo on 127.0.0.1:%u\n", ntohs(sa.sin_port));
  fflush(stdout);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) != 0) die("epoll_ctl");
  struct epoll_event evs[256];
  static char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        for (;;) {
          int c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
            die("setsockopt");
          struct epoll_event ce = {.events = EPOLLIN | EPOLLET, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) != 0) die("epoll_ctl");
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r > 0) {
          /* echo; a full socket buffer would need a queue, which 64-byte
           * ping-pong never fills */
          if (write(fd, buf, (size_t)r) != r) {
            if (close(fd) != 0) die("close");
            break;
          }
          continue;
        }
        if (r < 0 && errno == EAGAIN) break;
        if (close(fd) != 0) die("close"); /* EOF or error */
        break;
      }
    }
  }
}
