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
troupeinclude_HEADERS += include/troupe/http.h
libtroupe_la_SOURCES += net/http_parse.c

# a pure codec: its test needs no runtime, so it is not in runtime_tests
check_PROGRAMS += tests/check_http_parse
TESTS += tests/check_http_parse
tests_check_http_parse_SOURCES = tests/check_http_parse.c tests/testutil.h
tests_check_http_parse_CFLAGS = $(TEST_CFLAGS)
tests_check_http_parse_LDADD = $(TEST_LIBS)

EXTRA_DIST += tests/fuzz/fuzz_http_request.c tests/fuzz/fuzz_http_response.c \
	tests/fuzz/fuzz_http_chunked.c tests/fuzz/http_fuzz.h \
	tests/fuzz/corpus/http_request/bare_lf \
	tests/fuzz/corpus/http_request/cl_te \
	tests/fuzz/corpus/http_request/ctl_value \
	tests/fuzz/corpus/http_request/dup_cl \
	tests/fuzz/corpus/http_request/expect_upgrade \
	tests/fuzz/corpus/http_request/get \
	tests/fuzz/corpus/http_request/http10_keepalive \
	tests/fuzz/corpus/http_request/http20 \
	tests/fuzz/corpus/http_request/leading_crlf \
	tests/fuzz/corpus/http_request/obs_fold \
	tests/fuzz/corpus/http_request/pipelined \
	tests/fuzz/corpus/http_request/post_chunked \
	tests/fuzz/corpus/http_request/post_length \
	tests/fuzz/corpus/http_request/te_gzip \
	tests/fuzz/corpus/http_response/bad_status \
	tests/fuzz/corpus/http_response/bare_cr \
	tests/fuzz/corpus/http_response/chunked \
	tests/fuzz/corpus/http_response/cl_te \
	tests/fuzz/corpus/http_response/close_delimited \
	tests/fuzz/corpus/http_response/continue \
	tests/fuzz/corpus/http_response/empty_reason \
	tests/fuzz/corpus/http_response/http10 \
	tests/fuzz/corpus/http_response/length \
	tests/fuzz/corpus/http_response/no_content \
	tests/fuzz/corpus/http_response/not_modified \
	tests/fuzz/corpus/http_response/switching \
	tests/fuzz/corpus/http_chunked/bad_hex \
	tests/fuzz/corpus/http_chunked/bad_trailer \
	tests/fuzz/corpus/http_chunked/bare_lf \
	tests/fuzz/corpus/http_chunked/empty_body \
	tests/fuzz/corpus/http_chunked/extensions \
	tests/fuzz/corpus/http_chunked/many_chunks \
	tests/fuzz/corpus/http_chunked/no_crlf_after_data \
	tests/fuzz/corpus/http_chunked/one_chunk \
	tests/fuzz/corpus/http_chunked/overflow \
	tests/fuzz/corpus/http_chunked/quoted_ext \
	tests/fuzz/corpus/http_chunked/trailers \
	tests/fuzz/corpus/http_chunked/trailing_bytes

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
troupeinclude_HEADERS += include/troupe/http_server.h
libtroupe_la_SOURCES += net/stream.h net/stream.c net/ws_conn.h net/proto.h \
	net/proto.c net/http_server.c \
	net/ws_client.c
troupeinclude_HEADERS += include/troupe/ws_client.h
runtime_tests += tests/check_http_server tests/check_ws_client
tests_check_ws_client_SOURCES = tests/check_ws_client.c tests/testutil.h
tests_check_ws_client_CFLAGS = $(TEST_CFLAGS)
tests_check_ws_client_LDADD = $(TEST_LIBS)
tests_check_http_server_SOURCES = tests/check_http_server.c tests/testutil.h
tests_check_http_server_CFLAGS = $(TEST_CFLAGS)
tests_check_http_server_LDADD = $(TEST_LIBS)
check_PROGRAMS += examples/httpd
examples_httpd_SOURCES = examples/httpd.c
examples_httpd_LDADD = libtroupe.la
TESTS += tests/http_curl.sh examples/service tests/chat.sh tests/https.sh
EXTRA_DIST += tests/chat.sh tests/chat_test.py tests/https.sh
check_PROGRAMS += examples/service examples/chat
examples_chat_SOURCES = examples/chat.c
examples_chat_LDADD = libtroupe.la
examples_service_SOURCES = examples/service.c
examples_service_LDADD = libtroupe.la
EXTRA_DIST += tests/http_curl.sh tests/ws_client.py

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

# ---- HTTP client (net/http_client.c) -------------------------------------------
troupeinclude_HEADERS += include/troupe/http_client.h
libtroupe_la_SOURCES += net/http_client.c
runtime_tests += tests/check_http_client
tests_check_http_client_SOURCES = tests/check_http_client.c tests/testutil.h
tests_check_http_client_CFLAGS = $(TEST_CFLAGS)
tests_check_http_client_LDADD = $(TEST_LIBS)
check_PROGRAMS += examples/fetch
TESTS += examples/fetch
examples_fetch_SOURCES = examples/fetch.c
examples_fetch_LDADD = libtroupe.la

# ---- WebSocket and TLS benchmarks ----------------------------------------------
# The clients of ws-echo and tls-handshake (plain C, OpenSSL; never part of
# make check); bench/http runs them against bench/http_server --ws or
# --tls-cert, the npm ws server (bench/peers/node) and nginx.
net_wstls_bench_programs = bench/ws_client bench/tls_client
EXTRA_PROGRAMS += $(net_wstls_bench_programs)
CLEANFILES += $(net_wstls_bench_programs)
bench_ws_client_SOURCES = bench/ws_client.c
bench_ws_client_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
bench_ws_client_LDADD = $(OPENSSL_LIBS)
bench_tls_client_SOURCES = bench/tls_client.c
bench_tls_client_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
bench_tls_client_LDADD = $(OPENSSL_LIBS)
EXTRA_DIST += bench/peers/node/ws_echo.js bench/peers/nginx/nginx-tls.conf.in
bench: $(net_wstls_bench_programs)
