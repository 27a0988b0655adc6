# SPDX-License-Identifier: MIT
# Build fragment of io/ and net/ (reactor, timers, files, blocking pool,
# TCP), included by the top-level Makefile.am.
