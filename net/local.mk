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
troupeinclude_HEADERS += include/troupe/tls.h
libtroupe_la_SOURCES += net/tls.c
# Runtime-free: not among runtime_tests (the ThreadSanitizer pass).
check_PROGRAMS += tests/check_tls
TESTS += tests/check_tls
tests_check_tls_SOURCES = tests/check_tls.c tests/testutil.h
tests_check_tls_CFLAGS = $(TEST_CFLAGS) $(OPENSSL_CFLAGS)
tests_check_tls_LDADD = $(TEST_LIBS) $(OPENSSL_LIBS)
EXTRA_DIST += tests/fuzz/fuzz_tls.c \
	tests/fuzz/corpus/tls/clienthello_tls12 \
	tests/fuzz/corpus/tls/clienthello_tls12_bytewise \
	tests/fuzz/corpus/tls/clienthello_tls13 \
	tests/fuzz/corpus/tls/clienthello_tls13_bytewise \
	tests/fuzz/corpus/tls/http_request \
	tests/fuzz/corpus/tls/serverflight_tls12 \
	tests/fuzz/corpus/tls/serverflight_tls12_split7 \
	tests/fuzz/corpus/tls/serverflight_tls13 \
	tests/fuzz/corpus/tls/serverflight_tls13_split7

# ---- streams and HTTP server/client (net/stream.c, net/http_server.c) --------
