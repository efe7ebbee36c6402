'use strict';
// W5 peer: one ocpp-rpc RPCClient (OCPP 1.6) sending MeterValues back to back to the
// null server for a warm-up and then a measured window. --strict 1|0 sets strictMode.
// Prints JSON lines: window_start, window_end, result.

const { RPCClient } = require('ocpp-rpc');

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].slice(2)] = argv[i + 1];
const URL_BASE = args.url;
const STRICT = args.strict === '1';
const WARMUP = Number(args.warmup || 1) * 1000;
const DURATION = Number(args.duration || 10) * 1000;

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function meterValues() {
  const ctx = 'Sample.Periodic';
  return {
    connectorId: 1,
    meterValue: [{
      timestamp: new Date().toISOString(),
      sampledValue: [
        { value: '12345.6', context: ctx, measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
        { value: '7200', context: ctx, measurand: 'Power.Active.Import', unit: 'W' },
        { value: '31.3', context: ctx, measurand: 'Current.Import', phase: 'L1', unit: 'A' },
        { value: '230.1', context: ctx, measurand: 'Voltage', phase: 'L1-N', unit: 'V' },
      ],
    }],
  };
}

async function main() {
  const cli = new RPCClient({
    endpoint: URL_BASE, identity: 'GW-W5', protocols: ['ocpp1.6'], strictMode: STRICT,
  });
  await cli.connect();
  await cli.call('BootNotification', { chargePointVendor: 'Bench', chargePointModel: 'BenchGW' });
  const params = meterValues();
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  let calls = 0;
  let errors = 0;
  const lat = [];
  let end = now() + WARMUP;
  while (now() < end) {
    try { await cli.call('MeterValues', params); } catch (e) { errors += 1; }
  }
  const w0 = now();
  end = w0 + DURATION;
  emit('window_start', {});
  while (now() < end) {
    const t = now();
    try {
      await cli.call('MeterValues', params);
      calls += 1;
      lat.push(now() - t);
    } catch (e) {
      errors += 1;
    }
  }
  const seconds = (now() - w0) / 1000;
  emit('window_end', {});
  lat.sort((a, b) => a - b);
  const n = lat.length;
  emit('result', {
    kind: STRICT ? 'ocpp-rpc-strict' : 'ocpp-rpc',
    calls,
    errors,
    seconds,
    calls_per_s: calls / seconds,
    p50_ms: n ? lat[Math.floor(n / 2)] : null,
    p99_ms: n ? lat[Math.min(n - 1, Math.floor(n * 0.99))] : null,
  });
  await cli.close({ force: true });
}

setTimeout(() => process.exit(3), 600000).unref();
main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
