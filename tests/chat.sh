#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs tests/chat_test.py against examples/chat (python3-websockets).
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
/usr/bin/python3 -c 'import websockets' 2>/dev/null ||
  { echo "FAIL: python3-websockets is not installed"; exit 1; }
exec /usr/bin/python3 "$top_srcdir/tests/chat_test.py" "$top_builddir/examples/chat"
