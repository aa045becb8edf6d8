import type * as k8s from '@kubernetes/client-node';
import { sourceOf, type Coordinates } from '../../shared/contract/identity.js';
import { jobName, legacyJobName } from '../../shared/contract/naming.js';

/**
 * The controller's Jobs that carry the name releases before the injective naming gave them
 * (`<prefix>-<topic>-<partition>-<offset>`), by source offset, fed by the Job watch. After an
 * upgrade a message redelivered before its offset was committed would otherwise meet no `409`
 * under its new name and get a second Job; its old Job is still in the watch (a Job's outcome
 * is recorded only after its offset is committed), so a map lookup finds it. The map holds only
 * old-named Jobs not yet reported, so it empties as they finish.
 */
export class LegacyJobs {
  private readonly byOffset = new Map<string, k8s.V1Job>();

  constructor(private readonly o: { prefix: string; topic: string }) {}

  /** A Job as the watch shows it (added or updated). */
  observe(job: k8s.V1Job): void {
    const at = sourceOf(job);
    const name = job.metadata?.name;
    if (!at || !name || at.topic !== this.o.topic) return;
    const old = legacyJobName(this.o.prefix, at.topic, at.partition, at.offset);
    if (name === old && name !== jobName(this.o.prefix, at.topic, at.partition, at.offset)) this.byOffset.set(`${at.partition}/${at.offset}`, job);
  }

  /** A Job deleted, or reported (it leaves the watch). */
  forget(job: k8s.V1Job): void {
    const at = sourceOf(job);
    if (at && this.byOffset.get(`${at.partition}/${at.offset}`)?.metadata?.name === job.metadata?.name) this.byOffset.delete(`${at.partition}/${at.offset}`);
  }

  /** A full list: it replaces what was known. */
  reconcile(all: k8s.V1Job[]): void {
    this.byOffset.clear();
    for (const j of all) this.observe(j);
  }

  /** The old-named Job made for the message at `at`, if the watch shows one. */
  find(at: Pick<Coordinates, 'partition' | 'offset'>): k8s.V1Job | undefined {
    return this.byOffset.get(`${at.partition}/${at.offset}`);
  }

  get size(): number {
    return this.byOffset.size;
  }
}
