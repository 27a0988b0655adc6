// SPDX-License-Identifier: MIT
// The npm "ws" package's server as the peer of the ws-echo workload
// (BENCHMARKS.md): every message goes back on its connection as it came
// (binary stays binary), without compression. One node process (node runs
// JavaScript on one thread). bench/http runs
//   NODE_PATH=<modules> node ws_echo.js PORT
// and waits for "listening on 127.0.0.1:PORT"; on SIGTERM or SIGINT it
// prints "echoed messages=N" and exits.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
let echoed = 0;
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
    echoed++;
  });
  ws.on('error', () => {});
});
wss.on('listening', () => {
  const a = wss.address();
  process.stdout.write(`http-server ws ${require('ws/package.json').version} node ${process.version}\n`);
  process.stdout.write(`listening on 127.0.0.1:${a.port}\n`);
});
const stop = () => {
  process.stdout.write(`echoed messages=${echoed}\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
