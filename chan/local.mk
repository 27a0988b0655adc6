# SPDX-License-Identifier: MIT
# Build fragment of the channel system, included by the top-level Makefile.am.

libtroupe_la_SOURCES += \
	chan/chan_internal.h \
	chan/chan_core.c \
	chan/chan_mpsc.c \
	chan/chan_select.c \
	chan/chan_bcast.c
troupeinclude_HEADERS += include/troupe/channel.h

# The library again with its test hooks compiled in (TR_TEST_HOOKS: the
# TR_TEST_CHAN_STALL_MS knob of chan_mpsc.c), built by make check only and
# linked statically into the tests that use a hook; the installed library
# has none.
check_LTLIBRARIES = libtroupe_test.la
libtroupe_test_la_SOURCES = $(libtroupe_la_SOURCES)
libtroupe_test_la_CFLAGS = $(libtroupe_la_CFLAGS) -DTR_TEST_HOOKS
libtroupe_test_la_LIBADD = $(libtroupe_la_LIBADD)
TEST_HOOK_LIBS = libtroupe_test.la $(CHECK_LIBS) $(MSGPACK_LIBS) $(PTHREAD_LIBS)

chan_tests = \
	tests/check_chan_mpsc \
	tests/check_chan_oneshot \
	tests/check_chan_broadcast \
	tests/check_chan_watch \
	tests/check_chan_select
runtime_tests += $(chan_tests)
check_PROGRAMS += examples/chan_demo
TESTS += examples/chan_demo
EXTRA_DIST += doc/channels.md doc/overflow.md

tests_check_chan_mpsc_SOURCES = tests/check_chan_mpsc.c tests/testutil.h
tests_check_chan_mpsc_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_mpsc_LDADD = $(TEST_HOOK_LIBS)
tests_check_chan_oneshot_SOURCES = tests/check_chan_oneshot.c tests/testutil.h
tests_check_chan_oneshot_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_oneshot_LDADD = $(TEST_LIBS)
tests_check_chan_broadcast_SOURCES = tests/check_chan_broadcast.c tests/testutil.h \
	tests/keeputil.h
tests_check_chan_broadcast_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_broadcast_LDADD = $(TEST_LIBS)
tests_check_chan_watch_SOURCES = tests/check_chan_watch.c tests/testutil.h
tests_check_chan_watch_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_watch_LDADD = $(TEST_LIBS)
tests_check_chan_select_SOURCES = tests/check_chan_select.c tests/testutil.h \
	tests/keeputil.h
tests_check_chan_select_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_select_LDADD = $(TEST_HOOK_LIBS)

examples_chan_demo_SOURCES = examples/chan_demo.c
examples_chan_demo_LDADD = libtroupe.la

chan_bench_programs = bench/broadcast bench/select
EXTRA_PROGRAMS += $(chan_bench_programs)
CLEANFILES += $(chan_bench_programs)
bench_broadcast_SOURCES = bench/broadcast.c bench/benchutil.h
bench_broadcast_LDADD = libtroupe.la
bench_select_SOURCES = bench/select.c bench/benchutil.h
bench_select_LDADD = libtroupe.la
bench: $(chan_bench_programs)
