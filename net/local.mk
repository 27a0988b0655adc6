# SPDX-License-Identifier: MIT
# Build fragment of net/ (TCP actors, name resolution, and the protocol
# layer: codecs, TLS, streams, HTTP, WebSocket), included by the
# top-level Makefile.am after io/local.mk.

troupeinclude_HEADERS += include/troupe/net.h

libtroupe_la_SOURCES += \
	net/tcp.c \
	net/resolve.c
libtroupe_la_CFLAGS += $(OPENSSL_CFLAGS) -I$(top_srcdir)/net
libtroupe_la_LIBADD += $(OPENSSL_LIBS)

net_tests = tests/check_tcp tests/check_resolve
runtime_tests += $(net_tests)
check_PROGRAMS += examples/echo_server
TESTS += examples/echo_server

tests_check_tcp_SOURCES = tests/check_tcp.c tests/testutil.h
tests_check_tcp_CFLAGS = $(TEST_CFLAGS)
tests_check_tcp_LDADD = $(TEST_LIBS)
tests_check_resolve_SOURCES = tests/check_resolve.c tests/testutil.h
tests_check_resolve_CFLAGS = $(TEST_CFLAGS)
tests_check_resolve_LDADD = $(TEST_LIBS)

examples_echo_server_SOURCES = examples/echo_server.c
examples_echo_server_LDADD = libtroupe.la $(PTHREAD_LIBS)

# ---- HTTP/1.1 codec (net/http_parse.c) ---------------------------------------

# ---- WebSocket codec (net/ws_codec.c) ----------------------------------------

# ---- TLS engine (net/tls.c) ---------------------------------------------------

# ---- streams and HTTP server/client (net/stream.c, net/http_server.c) --------
troupeinclude_HEADERS += include/troupe/http_server.h
libtroupe_la_SOURCES += net/http_server.c
runtime_tests += tests/check_http_server
tests_check_http_server_SOURCES = tests/check_http_server.c tests/testutil.h
tests_check_http_server_CFLAGS = $(TEST_CFLAGS)
tests_check_http_server_LDADD = $(TEST_LIBS)
check_PROGRAMS += examples/httpd
examples_httpd_SOURCES = examples/httpd.c
examples_httpd_LDADD = libtroupe.la
TESTS += tests/http_curl.sh examples/service
check_PROGRAMS += examples/service
examples_service_SOURCES = examples/service.c
examples_service_LDADD = libtroupe.la
EXTRA_DIST += tests/http_curl.sh

# ---- HTTP benchmarks ---------------------------------------------------------
# troupe's server for http-hello and http-file (never part of make check);
# bench/http runs it beside nginx, whose configuration is in bench/peers/nginx.
net_bench_programs = bench/http_server
EXTRA_PROGRAMS += $(net_bench_programs)
CLEANFILES += $(net_bench_programs)
bench_http_server_SOURCES = bench/http_server.c bench/benchutil.h
bench_http_server_LDADD = libtroupe.la $(PTHREAD_LIBS)
EXTRA_DIST += bench/http bench/peers/nginx/nginx.conf.in
bench: $(net_bench_programs)
