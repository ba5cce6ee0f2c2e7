import { limits } from '../config.js';
import type { Logger } from '../logger.js';
import type { Inventory } from '@drover/protocol';

// What the manager learns about a host at enrollment: OS, arch, CPU, memory, disks, from
// systeminformation. Every probe is bounded in time: a hung `lsblk` must not stop a host from
// enrolling, so what is not known in time is left out (every field is optional on the wire).

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value.slice(0, 256) : undefined);
const count = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined);

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(undefined);
    }, ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}

function compact<T extends Record<string, unknown>>(value: T): T | undefined {
  const entries = Object.entries(value).filter(([, item]) => item !== undefined);
  return entries.length === 0 ? undefined : (Object.fromEntries(entries) as T);
}

/** Collects the host's inventory within `timeoutMs` (default 5 s); never throws. */
export async function collectInventory(logger: Logger, timeoutMs: number = limits.inventoryTimeoutMs): Promise<Inventory> {
  // Loaded on demand: systeminformation is only needed at enrollment, so it costs no idle memory.
  const si = (await import('systeminformation')).default;
  const [os, cpu, mem, disks, time] = await Promise.all([
    withTimeout(si.osInfo(), timeoutMs),
    withTimeout(si.cpu(), timeoutMs),
    withTimeout(si.mem(), timeoutMs),
    withTimeout(si.fsSize(), timeoutMs),
    withTimeout(Promise.resolve(si.time()), timeoutMs),
  ]);
  if (os === undefined || cpu === undefined || mem === undefined || disks === undefined) {
    logger.child({ component: 'drover:daemon:inventory' }).warn({ event: 'inventory.partial' }, 'Some inventory probes did not answer in time; enrolling with what is known');
  }
  const inventory: Inventory = {};
  const osPart = os === undefined ? undefined : compact({ platform: text(os.platform), distro: text(os.distro), release: text(os.release), codename: text(os.codename), kernel: text(os.kernel), arch: text(os.arch) });
  if (osPart !== undefined) inventory.os = osPart;
  const cpuPart =
    cpu === undefined
      ? undefined
      : compact({
          manufacturer: text(cpu.manufacturer),
          brand: text(cpu.brand),
          cores: count(cpu.cores),
          physicalCores: count(cpu.physicalCores),
          speedGHz: typeof cpu.speed === 'number' && Number.isFinite(cpu.speed) && cpu.speed >= 0 && cpu.speed <= 1000 ? cpu.speed : undefined,
        });
  if (cpuPart !== undefined) inventory.cpu = cpuPart;
  const memPart = mem === undefined ? undefined : compact({ totalBytes: count(mem.total), availableBytes: count(mem.available) });
  if (memPart !== undefined) inventory.memory = memPart;
  if (disks !== undefined) {
    inventory.disks = disks
      .filter((disk) => text(disk.mount) !== undefined)
      .slice(0, 64)
      .map((disk) => ({
        mount: disk.mount.slice(0, 4096),
        ...(text(disk.fs) === undefined ? {} : { fs: disk.fs.slice(0, 4096) }),
        ...(text(disk.type) === undefined ? {} : { type: disk.type.slice(0, 64) }),
        ...(count(disk.size) === undefined ? {} : { sizeBytes: count(disk.size) }),
        ...(count(disk.available) === undefined ? {} : { availableBytes: count(disk.available) }),
      }));
  }
  const uptime = time?.uptime;
  if (typeof uptime === 'number' && Number.isFinite(uptime) && uptime >= 0) inventory.uptimeSeconds = uptime;
  return inventory;
}
