#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/httpd over TLS against real clients: curl (verifying against a
# CA the test makes, keep-alive, uploads, HTTP/1.0), openssl s_client
# (TLS 1.2 and 1.3, ALPN), and a wss client (python3-websockets). The
# certificates are made here with the openssl command and removed after.
# Loopback only. Skips (77) without curl or openssl.
set -u
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not found"; exit 77; }
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl not found"; exit 77; }

tmp=$(mktemp -d -t troupe-https.XXXXXX) || exit 99
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
status=0
fail() { echo "FAIL: $*"; status=1; }

# a CA, and a server certificate it signs for localhost and 127.0.0.1
cd "$tmp" || exit 99
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj "/CN=troupe test CA" 2>/dev/null ||
  { echo "FAIL: making the CA"; exit 1; }
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 2 -extfile ext.cnf 2>/dev/null ||
  { echo "FAIL: making the server certificate"; exit 1; }
cd - >/dev/null || exit 99

mkdir -p "$tmp/root"
printf 'hello over tls\n' >"$tmp/root/index.html"
head -c 2000000 /dev/urandom >"$tmp/up.bin"

"$top_builddir/examples/httpd" --port 0 --root "$tmp/root" --echo /echo --ws /ws \
  --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key" >"$tmp/out" 2>"$tmp/err" &
pid=$!
i=0
while ! grep -q '^listening on ' "$tmp/out" 2>/dev/null; do
  i=$((i + 1))
  [ $i -gt 100 ] && { cat "$tmp/err"; echo "FAIL: httpd did not start"; exit 1; }
  sleep 0.1
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
base=https://localhost:$port
echo "httpd (TLS) on port $port"
cc="curl -sS --cacert $tmp/ca.pem --resolve localhost:$port:127.0.0.1"

[ "$($cc "$base/index.html")" = "hello over tls" ] || fail "GET over TLS"
$cc -v "$base/index.html" "$base/index.html" -o /dev/null -o /dev/null 2>"$tmp/v"
grep -q 'Re-using existing connection' "$tmp/v" || fail "keep-alive over TLS"
grep -q 'ALPN: server accepted http/1.1' "$tmp/v" || fail "ALPN http/1.1"
$cc --data-binary @"$tmp/up.bin" -H 'Transfer-Encoding: chunked' -o "$tmp/e1" "$base/echo"
cmp -s "$tmp/up.bin" "$tmp/e1" || fail "chunked upload over TLS"
$cc --data-binary @"$tmp/up.bin" -o "$tmp/e2" "$base/echo"
cmp -s "$tmp/up.bin" "$tmp/e2" || fail "upload over TLS"
[ "$($cc --http1.0 "$base/index.html")" = "hello over tls" ] || fail "HTTP/1.0 over TLS"
# a client that does not trust the CA is refused by curl (and the server
# goes on serving)
curl -s -o /dev/null "$base/index.html" --resolve localhost:$port:127.0.0.1 &&
  fail "a client without the CA accepted the certificate"
[ "$($cc "$base/index.html")" = "hello over tls" ] || fail "GET after a failed handshake"
# plain HTTP to the TLS port: the handshake fails, the server goes on
curl -s -m 5 -o /dev/null "http://127.0.0.1:$port/" && fail "plain HTTP on the TLS port"
[ "$($cc "$base/index.html")" = "hello over tls" ] || fail "GET after plain HTTP"

# openssl s_client, TLS 1.3 and 1.2
for v in -tls1_3 -tls1_2; do
  printf 'GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    openssl s_client $v -connect 127.0.0.1:"$port" -servername localhost \
      -CAfile "$tmp/ca.pem" -verify_return_error -alpn http/1.1 -ign_eof \
      >"$tmp/s$v" 2>&1
  grep -q 'Verify return code: 0 (ok)' "$tmp/s$v" || fail "s_client $v: verification"
  grep -q 'hello over tls' "$tmp/s$v" || fail "s_client $v: response"
  grep -q 'ALPN protocol: http/1.1' "$tmp/s$v" || fail "s_client $v: ALPN"
done

# wss
if /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
  /usr/bin/python3 - "$port" "$tmp/ca.pem" <<'PY' || fail "wss echo"
import asyncio, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect("wss://localhost:%s/ws" % sys.argv[1], ssl=ctx) as ws:
        await ws.send("over tls")
        assert await ws.recv() == "over tls"
        blob = bytes(range(256)) * 1000
        await ws.send(blob)
        assert await ws.recv() == blob
asyncio.run(main())
PY
fi

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
[ $rc -eq 0 ] || fail "httpd exit status $rc"
[ $status -eq 0 ] && echo "PASS: httpd over TLS"
exit $status
