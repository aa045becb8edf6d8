/**
 * The seeded half of `npm run chaos -- --random`: one generator (mulberry32) drives every
 * choice — which record shape, which codec, key, headers, when which fault — so a seed
 * replays the same run (up to the timing of the machine).
 */

export function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Draw {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** One of `weights`' keys, each as likely as its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((n, [, w]) => n + w, 0);
    for (const [k, w] of entries) if ((r -= w) < 0) return k;
    return entries.at(-1)![0];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

/** The record shapes the random mode sends, with how often (relative weights). */
export const SHAPE_WEIGHTS = {
  valid: 30,
  'valid-keyed-headers': 8,
  'java-batch': 8,
  'java-transaction-committed': 4,
  'java-transaction-aborted': 4,
  'invalid-json': 4,
  'binary-value': 3,
  'empty-value': 3,
  tombstone: 3,
  'wrong-types': 2,
  'unknown-job-type': 2,
  'policy-command': 3,
  'policy-env-file': 2,
  'not-a-config': 2,
  'over-max-bytes': 1,
  'big-header': 1,
  'big-key': 1,
  'admission-denied': 3,
} as const;
export type Shape = keyof typeof SHAPE_WEIGHTS;

export const FAULTS = ['controller-sigkill', 'controller-sigterm', 'broker-restart', 'apiserver-restart', 'second-controller'] as const;
export type Fault = (typeof FAULTS)[number];

/** Reads `--random --seed S --minutes M` (seed: a number; minutes: may be fractional). */
export function parseRandomArgs(argv: readonly string[]): { random: boolean; seed: number; minutes: number } {
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const seedArg = at('--seed');
  const seed = seedArg === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(seedArg);
  const minutes = Number(at('--minutes') ?? '5');
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed wants a non-negative integer, not ${seedArg}`);
  if (!(minutes > 0)) throw new Error(`--minutes wants a positive number, not ${at('--minutes')}`);
  return { random: argv.includes('--random'), seed, minutes };
}
