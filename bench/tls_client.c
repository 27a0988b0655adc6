/* SPDX-License-Identifier: MIT */
/*
 * The client of the "tls-handshake" workload of BENCHMARKS.md (run by
 * bench/http): new TLS 1.3 connections to an HTTPS server on 127.0.0.1,
 * C of them in flight at any time, for D seconds. One thread, non-blocking
 * sockets and epoll, OpenSSL. Each connection: connect, a full handshake
 * (no session is ever offered for resumption, none is kept; the server's
 * certificate is verified against the CA file and must be for
 * "localhost"), then
 *
 *   GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n
 *
 * then the response is read (head, then Content-Length bytes of body),
 * and the connection is closed once the server has closed its side.
 *
 *   tls_client -p PORT -C CA.pem [-c 50] [-d 10]
 *
 * At the end it prints one line:
 *
 *   TLSSUM completed=N hello=N duration_us=N p50_us=N p99_us=N max_us=N
 *          errors=N conns=N
 *
 * completed: connections whose handshake and response were done within
 * the run; hello (the checksum): those whose response was a 200 with
 * the body exactly "Hello, World!"; p50/p99/max: the time from connect
 * to the end of the response. Any error (a refused connection, a failed
 * handshake or verification, a bad or cut response) is counted and makes
 * the exit status 1.
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RESP_MAX 4096
#define FINE_US 100000u
#define COARSE_MS 600000u

static const char request[] =
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
static const char hello_body[] = "Hello, World!";

enum { CONNECTING, HANDSHAKE, WRITING, READING, DRAINING };

typedef struct conn {
  int fd; /* -1: a free slot */
  int state;
  SSL *ssl;
  uint64_t start_ns;
  char resp[RESP_MAX];
  size_t resplen;
  size_t reqoff;
} conn_t;

static uint64_t hist_fine[FINE_US];
static uint64_t hist_coarse[COARSE_MS + 1];
static uint64_t completed, hello, errors;
static int epfd;
static SSL_CTX *ctx;
static struct sockaddr_in sa;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tls_client: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us < FINE_US) hist_fine[us]++;
  else {
    uint64_t ms = us / 1000;
    hist_coarse[ms > COARSE_MS ? COARSE_MS : ms]++;
  }
}

static uint64_t percentile(double q) {
  if (!completed) return 0;
  uint64_t want = (uint64_t)(q * (double)completed), seen = 0;
  if (want >= completed) want = completed - 1;
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

static void finish(conn_t *c) {
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  if (c->fd >= 0) close(c->fd); /* also takes it out of the epoll set */
  c->fd = -1;
}

static void fail(conn_t *c, const char *what) {
  if (errors < 10) {
    unsigned long e = ERR_peek_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof(buf));
    fprintf(stderr, "tls_client: %s%s%s\n", what, e ? ": " : "", buf);
  }
  ERR_clear_error();
  errors++;
  finish(c);
}

static void want(conn_t *c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) != 0)
    die("epoll_ctl: %s", strerror(errno));
}

static void start(conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket: %s", strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  c->start_ns = now_ns();
  c->resplen = 0;
  c->reqoff = 0;
  c->state = CONNECTING;
  struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) != 0)
    die("epoll_ctl: %s", strerror(errno));
  if (connect(c->fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0 &&
      errno != EINPROGRESS)
    fail(c, strerror(errno));
}

/* Checks the response so far: 0 for more, 1 once it is whole, 2 once it
 * is whole and the 13 bytes "Hello, World!" with status 200, -1 if it is
 * malformed. */
static int response_done(conn_t *c) {
  c->resp[c->resplen] = '\0';
  char *end = strstr(c->resp, "\r\n\r\n");
  if (!end) return 0;
  const char *cl = strcasestr(c->resp, "\r\nContent-Length:");
  if (!cl || cl > end) return -1;
  size_t len = strtoul(cl + 17, NULL, 10);
  size_t have = c->resplen - (size_t)(end + 4 - c->resp);
  if (have < len) return 0;
  if (have > len) return -1;
  if (strncmp(c->resp, "HTTP/1.1 200 ", 13) == 0 &&
      len == sizeof(hello_body) - 1 && memcmp(end + 4, hello_body, len) == 0)
    return 2;
  return 1;
}

/* Moves c on as far as it goes; returns when it waits on the socket. */
static void step(conn_t *c, uint64_t end_ns) {
  for (;;) {
    int rc, err;
    switch (c->state) {
      case CONNECTING: {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr) {
          fail(c, strerror(soerr));
          return;
        }
        c->ssl = SSL_new(ctx);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) ||
            !SSL_set_tlsext_host_name(c->ssl, "localhost") ||
            !SSL_set1_host(c->ssl, "localhost"))
          die("SSL_new failed");
        SSL_set_connect_state(c->ssl);
        c->state = HANDSHAKE;
        break;
      }
      case HANDSHAKE:
        rc = SSL_do_handshake(c->ssl);
        if (rc == 1) {
          c->state = WRITING;
          break;
        }
        err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_WANT_READ) return want(c, EPOLLIN);
        if (err == SSL_ERROR_WANT_WRITE) return want(c, EPOLLOUT);
        fail(c, "handshake failed");
        return;
      case WRITING:
        rc = SSL_write(c->ssl, request + c->reqoff,
                       (int)(sizeof(request) - 1 - c->reqoff));
        if (rc > 0) {
          c->reqoff += (size_t)rc;
          if (c->reqoff == sizeof(request) - 1) c->state = READING;
          break;
        }
        err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_WANT_READ) return want(c, EPOLLIN);
        if (err == SSL_ERROR_WANT_WRITE) return want(c, EPOLLOUT);
        fail(c, "SSL_write failed");
        return;
      case READING:
      case DRAINING: {
        char scratch[512];
        char *p = c->state == READING ? c->resp + c->resplen : scratch;
        size_t room =
            c->state == READING ? RESP_MAX - 1 - c->resplen : sizeof(scratch);
        if (room == 0) {
          fail(c, "response too long");
          return;
        }
        rc = SSL_read(c->ssl, p, (int)room);
        if (rc > 0) {
          if (c->state == DRAINING) {
            fail(c, "more than the response");
            return;
          }
          c->resplen += (size_t)rc;
          int done = response_done(c);
          if (done < 0) {
            fail(c, "a malformed response");
            return;
          }
          if (done) {
            uint64_t t = now_ns();
            if (t <= end_ns) {
              completed++;
              if (done == 2) hello++;
              record(t - c->start_ns);
            }
            c->state = DRAINING;
          }
          break;
        }
        err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_WANT_READ) return want(c, EPOLLIN);
        if (err == SSL_ERROR_WANT_WRITE) return want(c, EPOLLOUT);
        if (c->state == DRAINING &&
            (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL ||
             err == SSL_ERROR_SSL)) {
          /* the server closed after the response (with or without a
           * close_notify): done */
          ERR_clear_error();
          finish(c);
          return;
        }
        fail(c, "the connection ended before the response");
        return;
      }
    }
  }
}

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: tls_client -p PORT -C CA.pem [-c CONNS] [-d SECONDS]\n");
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
  unsigned long port = 0, nconns = 50, secs = 10;
  const char *ca = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(0);
    if (a[0] != '-' || !a[1] || a[2] || i + 1 >= argc) usage(64);
    const char *v = argv[++i];
    switch (a[1]) {
      case 'p': port = number(v, 65535); break;
      case 'C': ca = v; break;
      case 'c': nconns = number(v, 10000); break;
      case 'd': secs = number(v, 3600); break;
      default: usage(64);
    }
  }
  if (!port || !ca || !nconns || !secs) usage(64);
  signal(SIGPIPE, SIG_IGN);

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new failed");
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
    die("cannot restrict to TLS 1.3");
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
    die("%s: cannot load the CA", ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* every connection a full handshake: no session kept or offered */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  static const unsigned char alpn[] = "\x08http/1.1";
  if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
    die("ALPN failed");

  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  epfd = epoll_create1(0);
  if (epfd < 0) die("epoll_create1: %s", strerror(errno));
  conn_t *conns = calloc(nconns, sizeof(*conns));
  if (!conns) die("out of memory");

  uint64_t t0 = now_ns(), end = t0 + (uint64_t)secs * 1000000000u;
  for (unsigned long i = 0; i < nconns; i++) {
    conns[i].fd = -1;
    start(&conns[i]);
  }
  struct epoll_event evs[256];
  uint64_t t = t0;
  while (t < end) {
    int ms = (int)((end - t + 999999) / 1000000);
    int n = epoll_wait(epfd, evs, 256, ms);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    t = now_ns();
    for (int k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      if (c->fd < 0) continue;
      step(c, end);
      /* a slot done with starts the next connection */
      if (c->fd < 0 && t < end) start(c);
    }
    /* slots freed by a failed start */
    for (unsigned long i = 0; i < nconns && t < end && errors < 1000; i++)
      if (conns[i].fd < 0) start(&conns[i]);
    if (errors >= 1000) break;
  }
  uint64_t elapsed = now_ns() - t0;
  for (unsigned long i = 0; i < nconns; i++) finish(&conns[i]);
  printf("TLSSUM completed=%" PRIu64 " hello=%" PRIu64 " duration_us=%" PRIu64
         " p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%" PRIu64
         " errors=%" PRIu64 " conns=%lu\n",
         completed, hello, elapsed / 1000, percentile(0.50), percentile(0.99),
         max_us(), errors, nconns);
  SSL_CTX_free(ctx);
  free(conns);
  return errors ? 1 : 0;
}
