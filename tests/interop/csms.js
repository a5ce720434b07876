// A CSMS on another stack than the tests' own: ocpp-rpc (Node.js, the `ws` WebSocket library)
// in strict mode, which validates every call and answer against the OCPP 1.6 JSON schemas with
// its own validator (ajv). Driven by tests/nodecsms.py over stdin/stdout, one JSON object a
// line: it prints {"ev": "listening", "port"}, each connection ("connect", "close" with the
// code), each CALL the charger makes ("in", answered Accepted-style) and each schema failure
// ("violation"); a line {"id", "method", "params"} on stdin is sent to the charger as a CALL
// and answered with {"id", "result"} or {"id", "error"}.
'use strict';
const readline = require('readline');
const { RPCServer } = require('ocpp-rpc');

const say = (o) => process.stdout.write(JSON.stringify({ t: Date.now() / 1000, ...o }) + '\n');
const now = () => new Date().toISOString();
const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true, pingIntervalMs: 5000 });
let client = null;
let txId = 100;

server.auth((accept, reject, handshake) => accept({}));
server.on('client', (c) => {
  client = c;
  say({ ev: 'connect', identity: c.identity, protocol: c.protocol });
  c.on('close', (e) => say({ ev: 'close', code: e.code }));
  c.on('strictValidationFailure', (e) => say({ ev: 'violation', error: String(e.error && e.error.message) }));
  c.on('badMessage', (e) => say({ ev: 'violation', error: 'bad message: ' + String(e.error) }));
  const answers = {
    BootNotification: () => ({ status: 'Accepted', interval: 1, currentTime: now() }),
    Heartbeat: () => ({ currentTime: now() }),
    Authorize: () => ({ idTagInfo: { status: 'Accepted' } }),
    StartTransaction: () => ({ transactionId: ++txId, idTagInfo: { status: 'Accepted' } }),
    StopTransaction: () => ({ idTagInfo: { status: 'Accepted' } }),
    DataTransfer: () => ({ status: 'Accepted' }),
  };
  c.handle(({ method, params }) => {
    const answer = answers[method] ? answers[method]() : {};
    say({ ev: 'in', method, params, answer });
    return answer;
  });
});

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const m = JSON.parse(line);
  try {
    if (!client) throw new Error('no charger connected');
    say({ id: m.id, result: await client.call(m.method, m.params) });
  } catch (e) {
    say({ id: m.id, error: String(e && e.message), code: e && e.rpcErrorCode });
  }
});
server.listen(0, '127.0.0.1').then((http) => say({ ev: 'listening', port: http.address().port }));
