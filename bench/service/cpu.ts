// Where the CPU went during a measured window: the whole machine (/proc/stat, or os.cpus() off Linux), this process
// (the load generator, and the app too when it runs in process), the server process (Linux /proc), and the rest, which
// on a machine doing nothing else is Postgres (and the kernel's work on the loopback's packets). Busy near 100% means
// the run was CPU-bound; well below it, something waited (a lock, a commit's flush, a round trip). On a virtual
// machine, also the share of time the host gave the cores to someone else (steal): latencies measured while it is high
// are the host's as much as the service's.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface CpuUse {
  /** Busy share of all cores over the window. */
  busyPercent: number;
  /** Share of the window the hypervisor ran something else on these cores (Linux's steal time); null off Linux. */
  stolenPercent: number | null;
  /** CPU milliseconds per completed pair. */
  perPair: { machine: number; bench: number; server: number | null; rest: number };
}

interface Totals {
  machineBusy: number;
  machineAll: number;
  stolen: number | null;
  bench: number;
  server: number | null;
}

// Linux's USER_HZ, the unit of /proc/<pid>/stat times; 100 on every mainstream kernel.
const ticksPerSecond = 100;

/** CPU ms of a process from /proc, or null where there is no /proc (or the process is gone). */
function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, hence the last parenthesis): utime and stime are the
    // 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** All cores' CPU ms since boot from /proc/stat's cpu line (null where there is none). Busy counts softirq time,
 * where Linux handles the loopback's packets: os.cpus() leaves it out (and iowait, which is idle), while a process's
 * own time can include softirq work done in its context, so the rest came out below zero when Postgres did little.
 * Steal is the 8th number. */
function procStat(): { busy: number; all: number; stolen: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    if (fields[0] !== 'cpu' || fields.length <= 8) return null;
    const ms = fields.slice(1, 9).map((field) => (Number(field) * 1000) / ticksPerSecond);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = ms;
    const busy = user! + nice! + system! + irq! + softirq!;
    return { busy, all: busy + idle! + iowait!, stolen: steal! };
  } catch {
    return null;
  }
}

function totals(serverPid: number | null): Totals {
  const self = process.cpuUsage();
  const processes = { bench: (self.user + self.system) / 1000, server: serverPid === null ? null : processCpuMs(serverPid) };
  const stat = procStat();
  if (stat) return { machineBusy: stat.busy, machineAll: stat.all, stolen: stat.stolen, ...processes };
  let machineBusy = 0;
  let machineAll = 0;
  for (const { times } of cpus()) {
    const busy = times.user + times.nice + times.sys + times.irq;
    machineBusy += busy;
    machineAll += busy + times.idle;
  }
  return { machineBusy, machineAll, stolen: null, ...processes };
}

/** Starts a window; the function it returns ends it, and the window's use is then divided by `pairs`. */
export function cpuWindow(serverPid: number | null): () => (pairs: number) => CpuUse {
  const from = totals(serverPid);
  return () => {
    const to = totals(serverPid);
    return (pairs) => {
      const machine = to.machineBusy - from.machineBusy;
      const bench = to.bench - from.bench;
      const server = to.server === null || from.server === null ? null : to.server - from.server;
      const per = (ms: number) => ms / Math.max(pairs, 1);
      const stolen = to.stolen === null || from.stolen === null ? null : to.stolen - from.stolen;
      return {
        busyPercent: (100 * machine) / (to.machineAll - from.machineAll),
        // Steal is not among the busy or idle times: the window's whole is theirs plus the stolen.
        stolenPercent: stolen === null ? null : (100 * stolen) / (to.machineAll - from.machineAll + stolen),
        perPair: { machine: per(machine), bench: per(bench), server: server === null ? null : per(server), rest: per(machine - bench - (server ?? 0)) },
      };
    };
  };
}
