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

troupeinclude_HEADERS += include/troupe/ws.h
libtroupe_la_SOURCES += net/ws_codec.c

# Pure code: a unit test, not a runtime test (no ThreadSanitizer pass).
check_PROGRAMS += tests/check_ws_codec
TESTS += tests/check_ws_codec
tests_check_ws_codec_SOURCES = tests/check_ws_codec.c tests/testutil.h
tests_check_ws_codec_CFLAGS = $(TEST_CFLAGS)
tests_check_ws_codec_LDADD = $(TEST_LIBS)

EXTRA_DIST += tests/fuzz/fuzz_ws_frame.c \
	tests/fuzz/corpus/ws_frame/binary_256_masked \
	tests/fuzz/corpus/ws_frame/binary_65536_unmasked \
	tests/fuzz/corpus/ws_frame/close_bye_masked \
	tests/fuzz/corpus/ws_frame/close_empty_unmasked \
	tests/fuzz/corpus/ws_frame/continuation_first_masked \
	tests/fuzz/corpus/ws_frame/declares_1mib_plus_1 \
	tests/fuzz/corpus/ws_frame/fragmented_unmasked \
	tests/fuzz/corpus/ws_frame/fragments_ping_between_masked \
	tests/fuzz/corpus/ws_frame/length_not_shortest_unmasked \
	tests/fuzz/corpus/ws_frame/mixed_masked \
	tests/fuzz/corpus/ws_frame/ping_pong_masked \
	tests/fuzz/corpus/ws_frame/text_hello_masked \
	tests/fuzz/corpus/ws_frame/text_hello_unmasked \
	tests/fuzz/corpus/ws_frame/utf8_overlong_masked \
	tests/fuzz/corpus/ws_frame/utf8_split_masked

# ---- TLS engine (net/tls.c) ---------------------------------------------------

# ---- streams and HTTP server/client (net/stream.c, net/http_server.c) --------
