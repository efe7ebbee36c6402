'use strict';
// Load generator for the ntxcp benchmark suite (Node + ws).
//
// It plays the gateways (charge points). Every payload is pre-encoded; only the
// uniqueId changes. Answers are checked cheaply (message type and uniqueId), never
// parsed as JSON, so that the generator costs as little CPU as possible.
//
// Modes:
//   calls   N gateways boot, then send MeterValues back to back (one outstanding per
//           connection); a warm-up, then a measured window.            (W1, W2)
//   idle    one heartbeat gateway boots, then N idle gateways boot and stay connected;
//           during the hold the heartbeat gateway sends Heartbeat every --hb-ms. (W3)
//   answer  N gateways boot and answer every GetConfiguration CALL.       (W4)
//
// Output: one JSON object per line on stdout: events (window_start, window_end,
// baseline, connected, hold_start, hold_end) and a final "result".
//
// Every wait is bounded: --max-runtime ends the process whatever happens.

const WebSocket = require('ws');
const { performance } = require('perf_hooks');

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`bad argument ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = argv[i + 1];
    i += 1;
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const MODE = args.mode || 'calls';
const FLAVOR = args.flavor || 'ntxcp'; // ntxcp | ocpp16
const URL_BASE = args.url; // e.g. ws://127.0.0.1:8887/ntxcp
const CONNS = Number(args.conns || 1);
const WARMUP = Number(args.warmup || 1) * 1000;
const DURATION = Number(args.duration || 10) * 1000;
const HOLD = Number(args.hold || 15) * 1000;
const HB_MS = Number(args.hbMs || 10);
const SOURCE_IPS = Number(args.sourceIps || 1);
const RAMP = Number(args.ramp || 200);
const CALL_TIMEOUT = Number(args.callTimeout || 10) * 1000;
const MAX_RUNTIME = Number(args.maxRuntime || 300) * 1000;
const MAX_SAMPLES = 4000000;
const PREFIX = args.prefix || 'GW';

if (!URL_BASE) {
  process.stderr.write('loadgen: --url is required\n');
  process.exit(2);
}

const SUBPROTOCOL = FLAVOR === 'ntxcp' ? 'ntxcp1.0' : 'ocpp1.6';
const ID_FIELD = FLAVOR === 'ntxcp' ? 'serviceId' : 'connectorId';
const TS = '"2026-01-01T00:00:00.000Z"';
const BOOT = FLAVOR === 'ntxcp'
  ? '{"dingxGatewayModel":"BenchGW","dingxGatewayVendor":"Bench"}'
  : '{"chargePointModel":"BenchGW","chargePointVendor":"Bench"}';
const METER = `{"${ID_FIELD}":1,"meterValue":[{"timestamp":${TS},"sampledValue":[`
  + '{"value":"12345.6","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"},'
  + '{"value":"7200","context":"Sample.Periodic","measurand":"Power.Active.Import","unit":"W"},'
  + '{"value":"31.3","context":"Sample.Periodic","measurand":"Current.Import","phase":"L1","unit":"A"},'
  + '{"value":"230.1","context":"Sample.Periodic","measurand":"Voltage","phase":"L1-N","unit":"V"}'
  + ']}]}';
const GETCONF_ANSWER = '{"configurationKey":['
  + '{"key":"HeartbeatInterval","readonly":false,"value":"300"},'
  + '{"key":"MeterValueSampleInterval","readonly":false,"value":"60"}],"unknownKey":[]}';

const t0 = performance.now();
const hardStop = setTimeout(() => {
  emit('result', { error: 'max-runtime reached', ...summary() });
  process.exit(3);
}, MAX_RUNTIME);

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, ms: performance.now() - t0, ...fields })}\n`);
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// ----------------------------------------------------------------- latency samples
const samples = new Float64Array(MAX_SAMPLES);
let nSamples = 0;
let measuring = false;
let calls = 0; // completed calls inside the window
let callErrors = 0; // CALLERROR answers (any time)
let timeouts = 0;
let unexpectedCloses = 0;
let answered = 0; // W4: CALLs answered by the generator

function record(ms) {
  calls += 1;
  if (nSamples < MAX_SAMPLES) { samples[nSamples] = ms; nSamples += 1; }
}

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function latencySummary() {
  const s = samples.slice(0, nSamples).sort();
  return {
    samples: nSamples,
    p50_ms: pct(s, 50), p90_ms: pct(s, 90), p99_ms: pct(s, 99), p999_ms: pct(s, 99.9),
    max_ms: s.length ? s[s.length - 1] : null,
  };
}

function summary() {
  return { calls, call_errors: callErrors, timeouts, unexpected_closes: unexpectedCloses, answered };
}

// ----------------------------------------------------------------- connections
class Conn {
  constructor(idx) {
    this.idx = idx;
    this.gwId = `${PREFIX}-${idx}`;
    this.seq = 0;
    this.pending = null; // '"<id>"' of the outstanding CALL
    this.sentAt = 0;
    this.cb = null;
    this.ws = null;
    this.closing = false;
  }

  call(action, body, cb) {
    this.seq += 1;
    const id = `${this.idx.toString(36)}.${this.seq.toString(36)}`;
    this.pending = `"${id}"`;
    this.cb = cb;
    this.sentAt = performance.now();
    this.ws.send(`[2,"${id}","${action}",${body}]`);
  }

  onMessage(buf) {
    const s = buf.toString();
    let k = 1;
    while (s.charCodeAt(k) === 32) k += 1;
    const type = s.charCodeAt(k);
    if (type === 50) { // '2': a CALL from the server (W4)
      const q1 = s.indexOf('"', k);
      const q2 = s.indexOf('"', q1 + 1);
      this.ws.send(`[3,${s.slice(q1, q2 + 1)},${GETCONF_ANSWER}]`);
      answered += 1;
      return;
    }
    if (this.pending === null || s.indexOf(this.pending, k) < 0) return; // late / unknown
    const ms = performance.now() - this.sentAt;
    const cb = this.cb;
    this.pending = null;
    this.cb = null;
    if (type !== 51) callErrors += 1; // not '3'
    cb(ms, type === 51);
  }

  open() {
    return new Promise((resolve) => {
      const opts = { perMessageDeflate: false, handshakeTimeout: CALL_TIMEOUT };
      if (SOURCE_IPS > 1) opts.localAddress = `127.0.0.${1 + (this.idx % SOURCE_IPS)}`;
      let done = false;
      const finish = (ok) => { if (!done) { done = true; resolve(ok); } };
      const ws = new WebSocket(`${URL_BASE}/${this.gwId}`, [SUBPROTOCOL], opts);
      this.ws = ws;
      ws.on('open', () => {
        this.call('BootNotification', BOOT, (_ms, ok) => finish(ok));
      });
      ws.on('message', (data) => this.onMessage(data));
      ws.on('error', () => finish(false));
      ws.on('close', () => {
        if (!this.closing && done) unexpectedCloses += 1;
        finish(false);
      });
      setTimeout(() => finish(false), CALL_TIMEOUT + 1000);
    });
  }

  close() {
    this.closing = true;
    if (this.ws) this.ws.terminate();
  }
}

async function openAll(first, count) {
  const conns = [];
  let next = 0;
  let ok = 0;
  let failed = 0;
  async function worker() {
    while (next < count) {
      const c = new Conn(first + next);
      next += 1;
      conns.push(c);
      if (await c.open()) ok += 1; else failed += 1;
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(RAMP, count); i += 1) workers.push(worker());
  await Promise.all(workers);
  return { conns, ok, failed };
}

// Calls outstanding longer than CALL_TIMEOUT are counted and their connection retired.
function watchdog(conns) {
  return setInterval(() => {
    const now = performance.now();
    for (const c of conns) {
      if (c.pending !== null && now - c.sentAt > CALL_TIMEOUT) {
        timeouts += 1;
        c.pending = null;
        c.cb = null;
      }
    }
  }, 500);
}

function closeAll(conns) {
  for (const c of conns) c.close();
}

// ----------------------------------------------------------------- modes
async function modeCalls() {
  const started = performance.now();
  const { conns, ok, failed } = await openAll(0, CONNS);
  const rampS = (performance.now() - started) / 1000;
  emit('connected', { ok, failed, seconds: rampS });
  const live = conns.filter((c) => c.ws && c.ws.readyState === WebSocket.OPEN);
  let running = true;
  const loop = (c) => {
    const onDone = (ms, okCall) => {
      if (measuring && okCall) record(ms);
      if (running && c.ws.readyState === WebSocket.OPEN) c.call('MeterValues', METER, onDone);
    };
    c.call('MeterValues', METER, onDone);
  };
  const wd = watchdog(live);
  for (const c of live) loop(c);
  await sleep(WARMUP);
  measuring = true;
  const w0 = performance.now();
  emit('window_start', {});
  await sleep(DURATION);
  measuring = false;
  const seconds = (performance.now() - w0) / 1000;
  emit('window_end', {});
  running = false;
  clearInterval(wd);
  emit('result', {
    mode: MODE, flavor: FLAVOR, conns: CONNS, connected: ok, connect_failed: failed,
    seconds, calls_per_s: calls / seconds, ...summary(), ...latencySummary(),
  });
  closeAll(conns);
}

async function modeIdle() {
  const hb = await openAll(1000000, 1);
  if (hb.ok !== 1) {
    emit('result', { mode: MODE, error: 'heartbeat gateway could not connect' });
    closeAll(hb.conns);
    return;
  }
  const hbConn = hb.conns[0];
  await sleep(1000);
  emit('baseline', {});
  await sleep(1000);
  const started = performance.now();
  const { conns, ok, failed } = await openAll(0, CONNS);
  const rampS = (performance.now() - started) / 1000;
  emit('connected', { ok, failed, seconds: rampS });
  await sleep(2000);
  measuring = true;
  let skipped = 0;
  emit('hold_start', {});
  const h0 = performance.now();
  const timer = setInterval(() => {
    if (hbConn.pending !== null) { skipped += 1; return; }
    hbConn.call('Heartbeat', '{}', (ms, okCall) => { if (measuring && okCall) record(ms); });
  }, HB_MS);
  const wd = watchdog([hbConn]);
  await sleep(HOLD);
  clearInterval(timer);
  measuring = false;
  const seconds = (performance.now() - h0) / 1000;
  emit('hold_end', {});
  clearInterval(wd);
  const stillOpen = conns.filter((c) => c.ws && c.ws.readyState === WebSocket.OPEN).length;
  emit('result', {
    mode: MODE, flavor: FLAVOR, conns: CONNS, connected: ok, connect_failed: failed,
    ramp_seconds: rampS, still_open: stillOpen, hold_seconds: seconds,
    heartbeats_skipped: skipped, ...summary(), ...latencySummary(),
  });
  closeAll(conns);
  closeAll(hb.conns);
}

async function modeAnswer() {
  const started = performance.now();
  const { conns, ok, failed } = await openAll(0, CONNS);
  emit('connected', { ok, failed, seconds: (performance.now() - started) / 1000 });
  // Answer until the server is done (the runner stops us) or HOLD has passed.
  const until = performance.now() + HOLD;
  while (performance.now() < until) {
    await sleep(200);
    if (conns.every((c) => !c.ws || c.ws.readyState !== WebSocket.OPEN)) break;
  }
  emit('result', { mode: MODE, flavor: FLAVOR, conns: CONNS, connected: ok, connect_failed: failed, ...summary() });
  closeAll(conns);
}

const modes = { calls: modeCalls, idle: modeIdle, answer: modeAnswer };
if (!modes[MODE]) {
  process.stderr.write(`loadgen: unknown mode ${MODE}\n`);
  process.exit(2);
}
modes[MODE]().then(() => {
  clearTimeout(hardStop);
  setTimeout(() => process.exit(0), 100);
}, (err) => {
  emit('result', { error: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
