/* SPDX-License-Identifier: MIT */
/*
 * The client of the "ws-echo" workload of BENCHMARKS.md (run by
 * bench/http): C WebSocket connections to a server on 127.0.0.1, each
 * sending a 64-byte binary message and waiting for its echo before it
 * sends the next one, for D seconds. One thread, plain sockets and
 * epoll; it makes the opening handshake itself (and checks the
 * server's Sec-WebSocket-Accept), masks every frame as a client must,
 * and compares every echo with what it sent, byte for byte.
 *
 *   ws_client -p PORT [-P /ws] [-c 100] [-d 10] [-s 64]
 *
 * The clock starts once every connection has upgraded. At the end it
 * prints one line:
 *
 *   WSSUM messages=N bytesum=N duration_us=N p50_us=N p99_us=N
 *         max_us=N errors=N conns=N
 *
 * messages: echoes that came back whole and equal to the message sent
 * (round trips); bytesum: the running sum of the bytes of their
 * payloads, which must equal the sum over the messages sent (checked
 * here too: a difference is an error); p50/p99/max: the round-trip time
 * of those messages, from the write of the frame to the end of the
 * echo. Any error (connection refused or closed, a bad handshake, a
 * frame that is not the echo) is counted and makes the exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/evp.h>

#define PAYLOAD_MAX 125 /* one frame with a 7-bit length */
#define HEAD_MAX 4096

/* Round-trip times: 1 us buckets below 100 ms, 1 ms buckets above. */
#define FINE_US 100000u
#define COARSE_MS 600000u

typedef struct conn {
  int fd;
  int upgraded;
  char key[32];        /* the Sec-WebSocket-Key sent */
  char head[HEAD_MAX]; /* the server's answer to the upgrade */
  size_t headlen;
  uint8_t out[PAYLOAD_MAX + 6]; /* the frame in flight */
  size_t outlen, outoff;
  uint8_t payload[PAYLOAD_MAX]; /* its payload, to compare the echo */
  uint8_t in[PAYLOAD_MAX + 16];
  size_t inlen;
  uint64_t seq;
  uint64_t sent_ns;
} conn_t;

static uint64_t hist_fine[FINE_US];
static uint64_t hist_coarse[COARSE_MS + 1];
static uint64_t messages, bytesum, expected_sum, errors;
static size_t psize = 64;
static int epfd;
static uint32_t rng = 0x9e3779b9u;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ws_client: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static void fail(conn_t *c, const char *what) {
  if (errors < 10)
    fprintf(stderr, "ws_client: connection %d: %s\n", c->fd, what);
  errors++;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static void record(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us < FINE_US) hist_fine[us]++;
  else {
    uint64_t ms = us / 1000;
    hist_coarse[ms > COARSE_MS ? COARSE_MS : ms]++;
  }
}

/* The round-trip time (us) below which a fraction q of them lie. */
static uint64_t percentile(double q) {
  if (!messages) return 0;
  uint64_t want = (uint64_t)(q * (double)messages), seen = 0;
  if (want >= messages) want = messages - 1;
  for (uint64_t i = 0; i < FINE_US; i++) {
    seen += hist_fine[i];
    if (seen > want) return i;
  }
  for (uint64_t i = 0; i <= COARSE_MS; i++) {
    seen += hist_coarse[i];
    if (seen > want) return i * 1000;
  }
  return (uint64_t)COARSE_MS * 1000;
}

static uint64_t max_us(void) {
  for (uint64_t i = COARSE_MS + 1; i-- > 0;)
    if (hist_coarse[i]) return i * 1000;
  for (uint64_t i = FINE_US; i-- > 0;)
    if (hist_fine[i]) return i;
  return 0;
}

static void set_events(conn_t *c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) != 0)
    die("epoll_ctl: %s", strerror(errno));
}

/* Writes what is left of c->out; 0, or -1 on an error. */
static int flush_out(conn_t *c) {
  while (c->outoff < c->outlen) {
    ssize_t n =
        send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
    if (n > 0) {
      c->outoff += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      set_events(c, EPOLLIN | EPOLLOUT);
      return 0;
    }
    fail(c, n < 0 ? strerror(errno) : "send wrote nothing");
    return -1;
  }
  return 0;
}

/* The next message: a fresh payload in a masked binary frame. */
static int send_message(conn_t *c) {
  uint32_t mask = next_rand();
  c->seq++;
  for (size_t i = 0; i < psize; i++)
    c->payload[i] = (uint8_t)(next_rand() >> 11);
  c->out[0] = 0x82; /* FIN, binary */
  c->out[1] = (uint8_t)(0x80 | psize);
  memcpy(c->out + 2, &mask, 4);
  const uint8_t *m = c->out + 2;
  for (size_t i = 0; i < psize; i++) c->out[6 + i] = c->payload[i] ^ m[i % 4];
  c->outlen = 6 + psize;
  c->outoff = 0;
  c->inlen = 0;
  c->sent_ns = now_ns();
  return flush_out(c);
}

static void base64(const uint8_t *in, size_t n, char *out) {
  EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Checks the server's answer to the upgrade (the head in c->head). */
static int check_upgrade(conn_t *c) {
  if (strncmp(c->head, "HTTP/1.1 101 ", 13) != 0) {
    fail(c, "the upgrade was not answered with 101");
    return -1;
  }
  char want[64], accept[64] = "";
  char src[96];
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  snprintf(src, sizeof(src), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
  if (!EVP_Digest(src, strlen(src), md, &mdlen, EVP_sha1(), NULL))
    die("SHA-1 failed");
  base64(md, mdlen, want);
  /* find Sec-WebSocket-Accept among the fields */
  for (char *line = strstr(c->head, "\r\n"); line && line[2];
       line = strstr(line + 2, "\r\n")) {
    static const char name[] = "Sec-WebSocket-Accept:";
    if (strncasecmp(line + 2, name, sizeof(name) - 1) == 0) {
      const char *v = line + 2 + sizeof(name) - 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t n = strcspn(v, " \t\r");
      if (n < sizeof(accept)) {
        memcpy(accept, v, n);
        accept[n] = '\0';
      }
      break;
    }
  }
  if (strcmp(accept, want) != 0) {
    fail(c, "wrong or missing Sec-WebSocket-Accept");
    return -1;
  }
  return 0;
}

/* Reads the answer to the upgrade; 1 once it is whole, 0 for more, -1 on
 * an error. Reads no further than the head (nothing follows it until the
 * first message is sent). */
static int read_upgrade(conn_t *c) {
  for (;;) {
    if (c->headlen >= HEAD_MAX - 1) {
      fail(c, "the upgrade answer is too long");
      return -1;
    }
    ssize_t n =
        recv(c->fd, c->head + c->headlen, HEAD_MAX - 1 - c->headlen, MSG_PEEK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    if (n <= 0) {
      fail(c, n < 0 ? strerror(errno) : "closed during the upgrade");
      return -1;
    }
    c->head[c->headlen + (size_t)n] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    size_t take = end ? (size_t)(end + 4 - c->head) - c->headlen : (size_t)n;
    if (recv(c->fd, c->head + c->headlen, take, 0) != (ssize_t)take) {
      fail(c, "recv of the upgrade answer");
      return -1;
    }
    c->headlen += take;
    c->head[c->headlen] = '\0';
    if (end) return check_upgrade(c) ? -1 : 1;
  }
}

/* Reads the echo; 1 once it is whole and checked, 0 for more, -1 on an
 * error. */
static int read_echo(conn_t *c) {
  size_t want = 2 + psize;
  for (;;) {
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    if (n <= 0) {
      fail(c, n < 0 ? strerror(errno) : "closed by the server");
      return -1;
    }
    c->inlen += (size_t)n;
    if (c->inlen >= 2 && (c->in[0] != 0x82 || c->in[1] != psize)) {
      fail(c, "a frame that is not a 64-byte unmasked binary message");
      return -1;
    }
    if (c->inlen > want) {
      fail(c, "more than the echo");
      return -1;
    }
    if (c->inlen < want) continue;
    if (memcmp(c->in + 2, c->payload, psize) != 0) {
      fail(c, "the echo differs from the message");
      return -1;
    }
    return 1;
  }
}

static int connect_one(conn_t *c, const struct sockaddr_in *sa,
                       const char *path, unsigned port) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) die("socket: %s", strerror(errno));
  if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0)
    die("connect to 127.0.0.1:%u: %s", port, strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  uint8_t raw[16];
  for (int i = 0; i < 16; i++) raw[i] = (uint8_t)(next_rand() >> 7);
  base64(raw, 16, c->key);
  char req[512];
  int n = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path, port, c->key);
  if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n)
    die("send of the upgrade: %s", strerror(errno));
  if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0)
    die("fcntl: %s", strerror(errno));
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) != 0)
    die("epoll_ctl: %s", strerror(errno));
  return 0;
}

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: ws_client -p PORT [-P PATH] [-c CONNS] [-d SECONDS] "
          "[-s BYTES]\n");
  exit(status);
}

static unsigned long number(const char *s, unsigned long max) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > max) usage(64);
  return v;
}

int main(int argc, char **argv) {
  unsigned long port = 0, nconns = 100, secs = 10;
  const char *path = "/ws";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(0);
    if (a[0] != '-' || !a[1] || a[2] || i + 1 >= argc) usage(64);
    const char *v = argv[++i];
    switch (a[1]) {
      case 'p': port = number(v, 65535); break;
      case 'P': path = v; break;
      case 'c': nconns = number(v, 100000); break;
      case 'd': secs = number(v, 3600); break;
      case 's': psize = number(v, PAYLOAD_MAX); break;
      default: usage(64);
    }
  }
  if (!port || !nconns || !secs || !psize || path[0] != '/') usage(64);
  signal(SIGPIPE, SIG_IGN);
  rng ^= (uint32_t)getpid() ^ (uint32_t)now_ns();

  epfd = epoll_create1(0);
  if (epfd < 0) die("epoll_create1: %s", strerror(errno));
  conn_t *conns = calloc(nconns, sizeof(*conns));
  if (!conns) die("out of memory");
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (unsigned long i = 0; i < nconns; i++)
    connect_one(&conns[i], &sa, path, (unsigned)port);

  struct epoll_event evs[256];
  /* the upgrades, within 10 s */
  unsigned long up = 0;
  uint64_t limit = now_ns() + 10000000000u;
  while (up < nconns && !errors) {
    int n = epoll_wait(epfd, evs, 256, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (c->upgraded) continue;
      int rc = read_upgrade(c);
      if (rc > 0) {
        c->upgraded = 1;
        up++;
      }
    }
    if (now_ns() > limit) die("%lu of %lu upgrades in 10 s", up, nconns);
  }
  if (errors) die("the upgrades failed");

  /* the echoes */
  uint64_t start = now_ns(), end = start + (uint64_t)secs * 1000000000u;
  for (unsigned long i = 0; i < nconns; i++)
    if (send_message(&conns[i])) {
      close(conns[i].fd);
      conns[i].fd = -conns[i].fd - 1;
    }
  uint64_t t = start;
  while (t < end) {
    int ms = (int)((end - t + 999999) / 1000000);
    int n = epoll_wait(epfd, evs, 256, ms);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (c->fd < 0) continue;
      int rc = 0;
      if (evs[k].events & EPOLLOUT) {
        rc = flush_out(c);
        if (!rc && c->outoff == c->outlen) set_events(c, EPOLLIN);
      }
      if (!rc && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        rc = read_echo(c);
      if (rc > 0) {
        uint64_t done = now_ns();
        record(done - c->sent_ns);
        messages++;
        for (size_t i = 0; i < psize; i++) {
          bytesum += c->in[2 + i];
          expected_sum += c->payload[i];
        }
        if (done < end) rc = send_message(c);
        else
          c->outlen = 0;
      }
      if (rc < 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -c->fd - 1;
      }
    }
    t = now_ns();
  }
  uint64_t elapsed = now_ns() - start;
  if (bytesum != expected_sum) {
    fprintf(stderr,
            "ws_client: the echoed bytes sum to %" PRIu64
            ", the messages sent to %" PRIu64 "\n",
            bytesum, expected_sum);
    errors++;
  }
  for (unsigned long i = 0; i < nconns; i++)
    if (conns[i].fd >= 0) close(conns[i].fd);
  printf("WSSUM messages=%" PRIu64 " bytesum=%" PRIu64 " duration_us=%" PRIu64
         " p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%" PRIu64
         " errors=%" PRIu64 " conns=%lu\n",
         messages, bytesum, elapsed / 1000, percentile(0.50), percentile(0.99),
         max_us(), errors, nconns);
  free(conns);
  return errors ? 1 : 0;
}
