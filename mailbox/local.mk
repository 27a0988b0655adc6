# SPDX-License-Identifier: MIT
# Build fragment of the channel system, included by the top-level Makefile.am.
