/**
 * What the machine charges for a round trip between two processes, at several rates: a one-byte echo over loopback
 * TCP between this process and a child, paced by a timer as the service bench's open loop paces its pairs. Prints
 * the CPU each side and the whole machine spent per round trip, measured as the service bench measures it
 * (bench/service/cpu.ts). On a machine where waking a sleeping
 * process is cheap, the figures hardly change with the rate; where it is dear (a virtual machine whose idle cores
 * must be woken by the hypervisor), a round trip at a low rate costs several times one at a high rate, and so does
 * every request of the service, which is why its CPU per pair rises as the load falls (README, Performance).
 *
 * Run: npm run bench:round-trip [-- --seconds 3]
 */
import { fork } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { cpuWindow } from './service/cpu.ts';

// The last is more than one connection's round trips can do here: one after the other, as fast as they go.
const rates = [100, 300, 1000, 100_000];

if (process.argv[2] === 'echo') {
  const server = createServer((socket) => socket.on('data', (data) => socket.write(data)));
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send!(typeof address === 'object' && address ? address.port : 0);
  });
} else {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
  const seconds = Number(values.seconds);
  if (!(seconds > 0)) {
    console.error('usage: npm run bench:round-trip -- [--seconds N]');
    process.exit(64);
  }
  const child = fork(process.argv[1]!, ['echo'], { execArgv: process.execArgv });
  try {
    const port = await new Promise<number>((resolve) => child.once('message', (message) => resolve(Number(message))));
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise((resolve) => socket.once('connect', resolve));
    console.log('| round trips / s asked | done | this process µs | echo process µs | whole machine µs |');
    console.log('|---:|---:|---:|---:|---:|');
    for (const rate of rates) {
      // The service bench's CPU window: "bench" is this process, "server" the echo process.
      const window = cpuWindow(child.pid!);
      const done = await echoAt(socket, rate, seconds);
      const { perPair } = window()(done);
      const us = (ms: number | null) => (ms === null ? '-' : (ms * 1000).toFixed(0));
      console.log(`| ${rate} | ${Math.round(done / seconds)} | ${us(perPair.bench)} | ${us(perPair.server)} | ${us(perPair.machine)} |`);
    }
    socket.destroy();
  } finally {
    child.kill();
  }
}

/** Round trips started at `rate` per second for `seconds`, each when the last has come back and it is due (at once
 * when it is overdue). */
function echoAt(socket: Socket, rate: number, seconds: number): Promise<number> {
  return new Promise((resolve) => {
    const started = performance.now();
    let done = 0;
    const next = () => {
      const now = performance.now();
      if (now - started >= seconds * 1000) return resolve(done);
      socket.once('data', () => {
        done += 1;
        const wait = started + (done * 1000) / rate - performance.now();
        if (wait > 0) setTimeout(next, wait);
        else next();
      });
      socket.write('x');
    };
    next();
  });
}
