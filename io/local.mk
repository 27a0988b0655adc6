# SPDX-License-Identifier: MIT
# Build fragment of io/ (reactor, timers, files, blocking pool), included
# by the top-level Makefile.am.

troupeinclude_HEADERS += include/troupe/io.h

libtroupe_la_SOURCES += \
	io/backend.h \
	io/io_internal.h \
	io/wheel.h \
	io/wheel.c \
	io/poll_uring.c \
	io/poll_epoll.c \
	io/poll_poll.c \
	io/reactor.c \
	io/timer.c \
	io/ask_timeout.c \
	io/blocking.c \
	io/file.c \
	io/filemap.c
libtroupe_la_CFLAGS += $(URING_CFLAGS) -I$(top_srcdir)/io
libtroupe_la_LIBADD += $(URING_LIBS)

# The backend contract suite, built once per backend (exit 77 where the
# backend is unavailable).
io_contract_tests = tests/check_io_uring tests/check_io_epoll tests/check_io_poll
io_tests = $(io_contract_tests) tests/check_timer_wheel tests/check_timer \
	tests/check_blocking tests/check_file

runtime_tests += $(io_tests)
check_PROGRAMS += examples/assets
TESTS += examples/assets

tests_check_io_uring_SOURCES = tests/check_io_contract.c tests/testutil.h
tests_check_io_uring_CFLAGS = $(TEST_CFLAGS) -DTR_TEST_BACKEND=TR_IO_BACKEND_URING
tests_check_io_uring_LDADD = $(TEST_LIBS)
tests_check_io_epoll_SOURCES = tests/check_io_contract.c tests/testutil.h
tests_check_io_epoll_CFLAGS = $(TEST_CFLAGS) -DTR_TEST_BACKEND=TR_IO_BACKEND_EPOLL
tests_check_io_epoll_LDADD = $(TEST_LIBS)
tests_check_io_poll_SOURCES = tests/check_io_contract.c tests/testutil.h
tests_check_io_poll_CFLAGS = $(TEST_CFLAGS) -DTR_TEST_BACKEND=TR_IO_BACKEND_POLL
tests_check_io_poll_LDADD = $(TEST_LIBS)
# The wheel is tested at the data-structure level, compiled in.
tests_check_timer_wheel_SOURCES = tests/check_timer_wheel.c io/wheel.c io/wheel.h
tests_check_timer_wheel_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/io
tests_check_timer_wheel_LDADD = $(TEST_LIBS)
tests_check_timer_SOURCES = tests/check_timer.c tests/testutil.h
tests_check_timer_CFLAGS = $(TEST_CFLAGS)
tests_check_timer_LDADD = $(TEST_LIBS)
tests_check_blocking_SOURCES = tests/check_blocking.c tests/testutil.h
tests_check_blocking_CFLAGS = $(TEST_CFLAGS)
tests_check_blocking_LDADD = $(TEST_LIBS)
tests_check_file_SOURCES = tests/check_file.c tests/testutil.h
tests_check_file_CFLAGS = $(TEST_CFLAGS)
tests_check_file_LDADD = $(TEST_LIBS)

examples_assets_SOURCES = examples/assets.c
examples_assets_LDADD = libtroupe.la

# Benchmarks (never part of make check).
io_bench_programs = bench/timers bench/timer_lateness bench/tcp_echo \
	bench/epoll_echo
EXTRA_PROGRAMS += $(io_bench_programs)
CLEANFILES += $(io_bench_programs)
bench_timers_SOURCES = bench/timers.c bench/benchutil.h
bench_timers_LDADD = libtroupe.la
bench_timer_lateness_SOURCES = bench/timer_lateness.c bench/benchutil.h
bench_timer_lateness_LDADD = libtroupe.la
bench_tcp_echo_SOURCES = bench/tcp_echo.c bench/benchutil.h
bench_tcp_echo_LDADD = libtroupe.la $(PTHREAD_LIBS)
bench_epoll_echo_SOURCES = bench/epoll_echo.c
bench_epoll_echo_LDADD = $(PTHREAD_LIBS)
bench: $(io_bench_programs)

EXTRA_DIST += doc/reactor.md doc/timers.md
