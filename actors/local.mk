# SPDX-License-Identifier: MIT
# Build fragment of actors/ (the supervisor) and its tests, included by the
# top-level Makefile.am.

troupeinclude_HEADERS += include/troupe/supervisor.h
libtroupe_la_SOURCES += actors/supervisor.c

actors_tests = tests/check_supervisor
runtime_tests += $(actors_tests)
check_PROGRAMS += examples/supervised
TESTS += examples/supervised

tests_check_supervisor_SOURCES = tests/check_supervisor.c tests/testutil.h \
	$(failinject_sources)
tests_check_supervisor_CFLAGS = $(TEST_CFLAGS)
tests_check_supervisor_LDADD = $(TEST_LIBS) -ldl
tests_check_supervisor_LDFLAGS = -export-dynamic

examples_supervised_SOURCES = examples/supervised.c
examples_supervised_LDADD = libtroupe.la
