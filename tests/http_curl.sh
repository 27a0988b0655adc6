#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/httpd against real clients: curl (keep-alive reuse, HEAD,
# HTTP/1.0, chunked upload, large files, path escapes), the WebSocket
# client of python3-websockets (tests/ws_client.py, with raw-socket
# protocol violations) and, when it is installed, a short wrk run. Loopback only; the server is started on a
# free port and stopped at the end. Skips (77) without curl.
set -u
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not found"; exit 77; }

httpd=$top_builddir/examples/httpd
tmp=$(mktemp -d -t troupe-http.XXXXXX) || exit 99
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
status=0
fail() { echo "FAIL: $*"; status=1; }

mkdir -p "$tmp/root/sub" "$tmp/outside"
printf 'hello from troupe\n' >"$tmp/root/index.html"
printf 'sub file\n' >"$tmp/root/sub/a.txt"
printf 'secret\n' >"$tmp/outside/secret.txt"
ln -s "$tmp/outside/secret.txt" "$tmp/root/escape.txt"
head -c 5000000 /dev/urandom >"$tmp/root/big.bin"
head -c 3000000 /dev/urandom >"$tmp/upload.bin"

"$httpd" --port 0 --root "$tmp/root" --echo /echo --ws /ws >"$tmp/out" 2>"$tmp/err" &
pid=$!
i=0
while ! grep -q '^listening on ' "$tmp/out" 2>/dev/null; do
  i=$((i + 1))
  [ $i -gt 100 ] && { cat "$tmp/err"; echo "FAIL: httpd did not start"; exit 1; }
  sleep 0.1
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
base=http://127.0.0.1:$port
echo "httpd on port $port"

# a file, and a directory's index
[ "$(curl -sS "$base/index.html")" = "hello from troupe" ] || fail "GET /index.html"
[ "$(curl -sS "$base/")" = "hello from troupe" ] || fail "GET / (index.html)"
[ "$(curl -sS "$base/sub/a.txt")" = "sub file" ] || fail "GET /sub/a.txt"
ct=$(curl -sS -o /dev/null -w '%{content_type}' "$base/sub/a.txt")
case $ct in text/plain*) ;; *) fail "content type of a.txt: $ct" ;; esac

# keep-alive: curl reuses one connection for several URLs
curl -sS -v "$base/index.html" "$base/sub/a.txt" "$base/index.html" \
  -o /dev/null -o /dev/null -o /dev/null 2>"$tmp/v"
n=$(grep -c 'Re-using existing connection' "$tmp/v")
[ "$n" -eq 2 ] || fail "keep-alive: $n reuses of 2"

# HEAD: the length, no body
curl -sS -I "$base/big.bin" >"$tmp/head"
grep -qi '^content-length: 5000000' "$tmp/head" || fail "HEAD length"
grep -qi '^date: ' "$tmp/head" || fail "HEAD Date"

# HTTP/1.0
code=$(curl -sS --http1.0 -o "$tmp/h10" -w '%{http_code}' "$base/index.html")
[ "$code" = 200 ] && [ "$(cat "$tmp/h10")" = "hello from troupe" ] ||
  fail "HTTP/1.0 GET ($code)"

# a 5 MB file arrives intact
curl -sS -o "$tmp/big.out" "$base/big.bin"
cmp -s "$tmp/root/big.bin" "$tmp/big.out" || fail "big file differs"

# 404, and no way out of the root
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/nope")" = 404 ] || fail "404"
for p in /../outside/secret.txt /sub/../../outside/secret.txt \
    /%2e%2e/outside/secret.txt /escape.txt /sub/%2e%2e/%2e%2e/outside/secret.txt; do
  body=$(curl -s --path-as-is "$base$p")
  case $body in *secret*) fail "path escape through $p" ;; esac
done

# uploads: fixed length and chunked, echoed back intact
curl -sS --data-binary @"$tmp/upload.bin" -H 'Content-Type: application/octet-stream' \
  -o "$tmp/echo1" "$base/echo"
cmp -s "$tmp/upload.bin" "$tmp/echo1" || fail "POST echo (length)"
curl -sS --data-binary @"$tmp/upload.bin" -H 'Transfer-Encoding: chunked' \
  -o "$tmp/echo2" "$base/echo"
cmp -s "$tmp/upload.bin" "$tmp/echo2" || fail "POST echo (chunked)"
# 100-continue: curl sends Expect for large bodies and waits for it
curl -sS -v --data-binary @"$tmp/upload.bin" -H 'Expect: 100-continue' \
  -o "$tmp/echo3" "$base/echo" 2>"$tmp/v3"
grep -q '< HTTP/1.1 100 Continue' "$tmp/v3" || fail "no 100 Continue"
cmp -s "$tmp/upload.bin" "$tmp/echo3" || fail "POST echo (100-continue)"

# a smuggling attempt is refused, not parsed leniently
resp=$(/usr/bin/python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
PY
)
case $resp in "HTTP/1.1 400"*) ;; *) fail "CL+TE: $resp" ;; esac

# WebSocket: a third-party client, then protocol violations
if /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
  /usr/bin/python3 "$top_srcdir/tests/ws_client.py" "$port" /ws || fail "WebSocket tests"
else
  fail "python3-websockets is not installed (apt-get install python3-websockets)"
fi

# wrk, when installed: a second of load, every response a 200
if command -v wrk >/dev/null 2>&1; then
  wrk -t1 -c20 -d1s "$base/index.html" >"$tmp/wrk" 2>&1
  grep -q 'Non-2xx' "$tmp/wrk" && fail "wrk saw non-2xx responses"
  grep -q 'Requests/sec' "$tmp/wrk" || fail "wrk did not run"
  grep 'Requests/sec' "$tmp/wrk"
fi

# a clean stop on SIGTERM
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
[ $rc -eq 0 ] || fail "httpd exit status $rc"

[ $status -eq 0 ] && echo "PASS: httpd with curl"
exit $status
