'use strict';
// Peer server: ocpp-rpc (Node), OCPP 1.6 ("ocpp1.6" subprotocol), written like the
// library's README server. --strict 1 turns on strict mode (schema validation of
// calls and responses), --strict 0 leaves it off (the library's default).
//
// With --w4-gateways N it also plays the server side of W4: once N gateways have
// booted it calls GetConfiguration on each, one outstanding per gateway (the library's
// default callConcurrency of 1), and counts the answers.
//
// Prints "READY <port>" once listening, then JSON event lines on stdout.

const { RPCServer, createRPCError } = require('ocpp-rpc');

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    out[argv[i].slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[i + 1];
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const HOST = args.host || '127.0.0.1';
const PORT = Number(args.port || 0);
const STRICT = args.strict === '1' || args.strict === 'true';
const W4_TARGET = Number(args.w4Gateways || 0);
const W4_WARMUP = Number(args.w4Warmup || 1) * 1000;
const W4_DURATION = Number(args.w4Duration || 10) * 1000;
const W4_WAIT = Number(args.w4Wait || 60) * 1000;
const MAX_RUNTIME = Number(args.maxRuntime || 3600) * 1000;

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: STRICT });
const clients = new Set();
let booted = 0;
let onAllBooted = null;

server.on('client', (client) => {
  clients.add(client);
  client.on('close', () => clients.delete(client));

  client.handle('BootNotification', () => {
    booted += 1;
    if (W4_TARGET && booted >= W4_TARGET && onAllBooted) onAllBooted();
    return { status: 'Accepted', interval: 300, currentTime: new Date().toISOString() };
  });
  client.handle('Heartbeat', () => ({ currentTime: new Date().toISOString() }));
  client.handle('MeterValues', () => ({}));
  client.handle(() => {
    throw createRPCError('NotImplemented');
  });
});

async function runW4() {
  const ready = await Promise.race([
    new Promise((r) => { onAllBooted = () => r(true); if (booted >= W4_TARGET) r(true); }),
    sleep(W4_WAIT).then(() => false),
  ]);
  if (!ready) {
    emit('result', { error: `only ${booted} of ${W4_TARGET} booted` });
    return;
  }
  const state = { counting: false, calls: 0, errors: 0, running: true };
  const caller = async (client) => {
    while (state.running) {
      try {
        await client.call('GetConfiguration', {});
        if (state.counting) state.calls += 1;
      } catch (err) {
        state.errors += 1;
        await sleep(10);
      }
    }
  };
  for (const c of clients) caller(c);
  await sleep(W4_WARMUP);
  state.counting = true;
  const t0 = process.hrtime.bigint();
  emit('window_start', {});
  await sleep(W4_DURATION);
  state.counting = false;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  emit('window_end', {});
  state.running = false;
  emit('result', { calls: state.calls, seconds, calls_per_s: state.calls / seconds, errors: state.errors });
}

async function main() {
  const httpServer = await server.listen(PORT, HOST);
  httpServer.maxConnections = 100000;
  console.log(`READY ${httpServer.address().port}`);
  if (W4_TARGET) runW4();
  await sleep(MAX_RUNTIME);
  await server.close({ code: 1001 });
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
