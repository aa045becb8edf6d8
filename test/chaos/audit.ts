/**
 * The chaos audit's arithmetic, pure: what each message sent was due (a Job, a dead-letter
 * record with a given reason, nothing at all for a record of an aborted transaction, or —
 * deleted by retention before it was read — a Job, a record or a place in a gap record), set
 * against what was seen: every Job the harness's own watch saw ADDED (by uid, whatever the
 * TTL did afterwards) and every dead-letter record on the topic.
 */

/** What one message must end with. */
export type Due =
  | { kind: 'job'; jobID: string }
  | { kind: 'record'; reason: string; truncated?: boolean }
  /** A record of an aborted transaction: a read_committed consumer never sees it. */
  | { kind: 'nothing' }
  /** Deleted by retention before it was consumed: recorded in a gap record, or handled before it went. */
  | { kind: 'gap-or-outcome' };

export interface Sent {
  /** `partition/offset`. */
  coords: string;
  due: Due;
  /** What the message was (a shape name), for the per-shape counts. */
  shape: string;
}

export interface SeenJob {
  uid: string;
  coords: string;
  jobID: string;
}

export interface SeenRecord {
  coords: string;
  reason: string;
  truncated: boolean;
  /** For a gap record: the last source offset it covers. */
  lastOffset?: string;
}

export interface Figures {
  messages: number;
  jobs: number;
  records: number;
  /** A message with no Job or record it was due. */
  lost: number;
  /** Every outcome beyond the one due: a second Job (by uid or by jobID), a second record, a Job for a message due a record, or any outcome for an aborted record. */
  duplicates: number;
  /** The first record of a message names another reason than the one due. */
  wrongReason: number;
  /** A record due truncation that was not. */
  untruncated: number;
  truncated: number;
  /** Deleted messages accounted for by a gap record. */
  gap: number;
}

export const zeroFigures = (): Figures => ({ messages: 0, jobs: 0, records: 0, lost: 0, duplicates: 0, wrongReason: 0, untruncated: 0, truncated: 0, gap: 0 });

/** Indexes what was seen once; `figures` then judges any subset of the messages sent. */
export class Ledger {
  private readonly jobsAt = new Map<string, Set<string>>();
  private readonly jobsByID = new Map<string, Set<string>>();
  private readonly recordsAt = new Map<string, SeenRecord[]>();
  private readonly gaps: { partition: string; from: bigint; to: bigint }[] = [];

  constructor(jobs: Iterable<SeenJob>, records: Iterable<SeenRecord>) {
    for (const j of jobs) {
      this.jobsAt.set(j.coords, (this.jobsAt.get(j.coords) ?? new Set()).add(j.uid));
      this.jobsByID.set(j.jobID, (this.jobsByID.get(j.jobID) ?? new Set()).add(j.uid));
    }
    for (const r of records) {
      if (r.reason === 'retention-gap') {
        const [p, o] = r.coords.split('/');
        this.gaps.push({ partition: p!, from: BigInt(o!), to: BigInt(r.lastOffset ?? o!) });
        continue;
      }
      this.recordsAt.set(r.coords, [...(this.recordsAt.get(r.coords) ?? []), r]);
    }
  }

  /** How many Jobs (uids) and records (gap records aside) exist for a message. */
  outcomes(coords: string): { jobs: number; records: number } {
    return { jobs: this.jobsAt.get(coords)?.size ?? 0, records: this.recordsAt.get(coords)?.length ?? 0 };
  }

  private inGap(coords: string): boolean {
    const [p, o] = coords.split('/');
    return this.gaps.some((g) => g.partition === p && BigInt(o!) >= g.from && BigInt(o!) <= g.to);
  }

  figures(sent: readonly Sent[]): Figures {
    const f = zeroFigures();
    for (const s of sent) {
      f.messages++;
      const uids = this.jobsAt.get(s.coords)?.size ?? 0;
      const recs = this.recordsAt.get(s.coords) ?? [];
      f.jobs += uids;
      f.records += recs.length;
      f.truncated += recs.filter((r) => r.truncated).length;
      switch (s.due.kind) {
        case 'job': {
          if (uids === 0) f.lost++;
          // Another uid for the same jobID counts once per extra Job, wherever it came from.
          const sameID = this.jobsByID.get(s.due.jobID)?.size ?? 0;
          f.duplicates += Math.max(0, uids - 1) + Math.max(0, sameID - Math.max(uids, 1)) + recs.length;
          break;
        }
        case 'record': {
          if (recs.length === 0) f.lost++;
          f.duplicates += Math.max(0, recs.length - 1) + uids;
          if (recs.length > 0 && recs[0]!.reason !== s.due.reason) f.wrongReason++;
          if (s.due.truncated && recs.length > 0 && !recs[0]!.truncated) f.untruncated++;
          break;
        }
        case 'nothing':
          f.duplicates += uids + recs.length;
          break;
        case 'gap-or-outcome':
          if (this.inGap(s.coords)) f.gap++;
          else if (uids + recs.length === 0) f.lost++;
          else f.duplicates += Math.max(0, uids + recs.length - 1);
          break;
      }
    }
    return f;
  }
}
