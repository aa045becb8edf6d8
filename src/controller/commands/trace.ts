import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type * as k8s from '@kubernetes/client-node';
import { ConfigError, isNotFound, TerminalError } from '../../shared/errors.js';
import { Annotation, jobSelector, Label, podsOfJobSelector, sourceOf, type Coordinates } from '../../shared/contract/identity.js';
import { jobName, legacyJobName, labelValue } from '../../shared/contract/naming.js';
import { createKafka } from '../../shared/kafka/kafka-client.js';
import { kafkaConnection, type KafkaConnection } from '../../shared/kafka/kafka.js';
import { PartitionReader, readOneMessage, type FetchedRecord, type OneMessage } from '../../shared/kafka/read-message.js';
import type { ControllerConfig } from '../config.js';
import { DlqHeader } from '../reporting/dead-letter.js';
import { KUEUE_QUEUE_LABEL } from '../jobs/kueue.js';
import { buildOutcome } from '../reporting/outcomes.js';

export type TraceTarget = { jobId: string } | { at: { partition: number; offset: string } } | { job: string };

/** Reads the last records of a topic: at most `limit` per partition, newest last. */
export type TailScan = (topic: string, limit: number, match: (r: FetchedRecord) => boolean) => Promise<(FetchedRecord & { partition: number })[]>;

export interface TraceDeps {
  config: Pick<ControllerConfig, 'KAFKA_TOPIC' | 'KAFKA_CONSUMER_GROUP' | 'JOB_NAMESPACE' | 'JOB_NAME_PREFIX' | 'DLQ_TOPIC' | 'RESULTS_TOPIC'>;
  batch: Pick<k8s.BatchV1Api, 'readNamespacedJob' | 'listNamespacedJob'>;
  core: Pick<k8s.CoreV1Api, 'listNamespacedPod' | 'listNamespacedEvent'>;
  /** The source message at `at` (its jobID when no Job is left). */
  read: (at: Coordinates) => Promise<OneMessage>;
  scan: TailScan;
  /** Records read per partition of the dead-letter and results topics, from their ends. */
  scanLimit: number;
}

export interface TraceReport {
  coordinates?: Coordinates;
  jobID?: string;
  job?: {
    name: string;
    namespace: string;
    created?: string;
    suspended: boolean;
    queue?: string;
    active: number;
    succeeded: number;
    failed: number;
    outcomeRecorded?: string;
    conditions: { type: string; status: string; reason?: string; message?: string; at?: string }[];
  };
  pod?: { name: string; phase?: string; exitCode?: number; reason?: string; summary?: string };
  deadLetters: { topic: string; partition: number; offset: string; reason?: string; stage?: string; error?: string; at?: string }[];
  results: { topic: string; partition: number; offset: string; status?: string; reason?: string }[];
  events: { type?: string; reason?: string; note?: string; at?: string }[];
  /** What could not be found, and where it was looked for. */
  notes: string[];
}

const iso = (d: unknown): string | undefined => (d ? new Date(d as string).toISOString() : undefined);

function jobIDOf(value: Buffer | null): string | undefined {
  try {
    const id = (JSON.parse(value?.toString('utf8') ?? '') as { jobID?: unknown }).jobID;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

async function readJob(d: TraceDeps, name: string): Promise<k8s.V1Job | undefined> {
  try {
    return await d.batch.readNamespacedJob({ name, namespace: d.config.JOB_NAMESPACE });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** A Job found by the producer's jobID: the label narrows the list, the annotation (exact) decides. */
async function jobByJobID(d: TraceDeps, id: string): Promise<k8s.V1Job | undefined> {
  const label = labelValue(id);
  const selector = `${jobSelector(d.config.KAFKA_CONSUMER_GROUP)}${label ? `,${Label.jobID}=${label}` : ''}`;
  const { items } = await d.batch.listNamespacedJob({ namespace: d.config.JOB_NAMESPACE, labelSelector: selector });
  return items
    .filter((j) => j.metadata?.annotations?.[Annotation.jobID] === id)
    .sort((a, b) => iso(b.metadata?.creationTimestamp)!.localeCompare(iso(a.metadata?.creationTimestamp)!))[0];
}

function summaryText(s: ReturnType<typeof buildOutcome>['summary']): string | undefined {
  if (s === undefined || typeof s === 'string') return s?.slice(-300);
  const servers = Object.entries(s.servers ?? {});
  const ok = servers.filter(([, v]) => v.status === 'initialized').length;
  const bad = servers.filter(([, v]) => v.status !== 'initialized').map(([k, v]) => `${k}: ${v.reason ?? v.status}`);
  return [`${s.status}`, s.reason, s.error, `${ok}/${servers.length} servers initialized`, bad.length ? bad.join(', ') : ''].filter(Boolean).join('; ');
}

/**
 * Where a message is: its coordinates, its Job and the Job's conditions, the pod's termination
 * summary, the Job's Events, and any dead-letter or results record. The dead-letter and
 * results topics are read from their ends only (`scanLimit` records per partition), so a
 * trace costs the same however long those topics are; an older record is reported missing
 * with the bound it was looked for within.
 */
export async function trace(d: TraceDeps, target: TraceTarget): Promise<TraceReport> {
  const cfg = d.config;
  const r: TraceReport = { deadLetters: [], results: [], events: [], notes: [] };
  let job: k8s.V1Job | undefined;
  if ('job' in target) {
    job = await readJob(d, target.job);
    if (!job) r.notes.push(`no Job ${target.job} in namespace ${cfg.JOB_NAMESPACE} (never made, or deleted after its TTL)`);
  } else if ('at' in target) {
    r.coordinates = { topic: cfg.KAFKA_TOPIC, ...target.at };
    const { partition, offset } = target.at;
    // A Job made before the naming change still carries the name it was made with.
    job =
      (await readJob(d, jobName(cfg.JOB_NAME_PREFIX, cfg.KAFKA_TOPIC, partition, offset))) ??
      (await readJob(d, legacyJobName(cfg.JOB_NAME_PREFIX, cfg.KAFKA_TOPIC, partition, offset)));
  } else {
    r.jobID = target.jobId;
    job = await jobByJobID(d, target.jobId);
  }
  if (job) {
    r.coordinates ??= sourceOf(job);
    r.jobID ??= job.metadata?.annotations?.[Annotation.jobID];
  }

  const dlq = await d.scan(cfg.DLQ_TOPIC, d.scanLimit, (rec) => {
    const h = rec.headers;
    if (r.coordinates)
      return (
        h[DlqHeader.topic] === r.coordinates.topic && h[DlqHeader.partition] === String(r.coordinates.partition) && h[DlqHeader.offset] === r.coordinates.offset
      );
    return r.jobID !== undefined && jobIDOf(rec.value) === r.jobID;
  });
  for (const rec of dlq) {
    const h = rec.headers;
    r.coordinates ??= { topic: h[DlqHeader.topic]!, partition: Number(h[DlqHeader.partition]), offset: h[DlqHeader.offset]! };
    r.deadLetters.push({
      topic: cfg.DLQ_TOPIC,
      partition: rec.partition,
      offset: rec.offset,
      reason: h[DlqHeader.reason],
      stage: h[DlqHeader.stage],
      error: h[DlqHeader.error],
      at: h[DlqHeader.at],
    });
  }
  if (!r.coordinates) {
    r.notes.push(
      `no Job with jobID ${JSON.stringify(r.jobID)} in ${cfg.JOB_NAMESPACE}, and no dead-letter record of it in the last ${d.scanLimit} records of each partition of ${cfg.DLQ_TOPIC}`,
    );
    return r;
  }
  if (r.jobID === undefined) {
    try {
      r.jobID = jobIDOf((await d.read(r.coordinates)).value);
    } catch (err) {
      if (!(err instanceof TerminalError)) throw err;
      r.notes.push(`source message unreadable: ${err.message}`);
    }
  }
  if (!job && 'at' in target)
    r.notes.push(
      `no Job for ${r.coordinates.topic}/${r.coordinates.partition}/${r.coordinates.offset} (dead-lettered before one was made, not consumed yet, or deleted after its TTL)`,
    );
  if (!r.deadLetters.length) r.notes.push(`no dead-letter record in the last ${d.scanLimit} records of each partition of ${cfg.DLQ_TOPIC}`);

  const name = job?.metadata?.name ?? jobName(cfg.JOB_NAME_PREFIX, r.coordinates.topic, r.coordinates.partition, r.coordinates.offset);
  if (cfg.RESULTS_TOPIC) {
    for (const rec of await d.scan(cfg.RESULTS_TOPIC, d.scanLimit, (x) => x.key?.toString('utf8') === name)) {
      let v: { status?: string; reason?: string } = {};
      try {
        v = JSON.parse(rec.value?.toString('utf8') ?? '{}') as typeof v;
      } catch {
        /* a foreign record: shown without its fields */
      }
      r.results.push({ topic: cfg.RESULTS_TOPIC, partition: rec.partition, offset: rec.offset, status: v.status, reason: v.reason });
    }
    if (!r.results.length) r.notes.push(`no results record in the last ${d.scanLimit} records of each partition of ${cfg.RESULTS_TOPIC}`);
  }
  if (!job) return r;

  const s = job.status ?? {};
  r.job = {
    name,
    namespace: job.metadata?.namespace ?? cfg.JOB_NAMESPACE,
    created: iso(job.metadata?.creationTimestamp),
    suspended: job.spec?.suspend === true,
    queue: job.metadata?.labels?.[KUEUE_QUEUE_LABEL],
    active: s.active ?? 0,
    succeeded: s.succeeded ?? 0,
    failed: s.failed ?? 0,
    outcomeRecorded: job.metadata?.labels?.[Label.outcome],
    conditions: (s.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message, at: iso(c.lastTransitionTime) })),
  };
  const pods = (await d.core.listNamespacedPod({ namespace: r.job.namespace, labelSelector: podsOfJobSelector(name) })).items;
  if (pods.length) {
    const o = buildOutcome(job, pods);
    const newest = [...pods].sort((a, b) => (iso(b.metadata?.creationTimestamp) ?? '').localeCompare(iso(a.metadata?.creationTimestamp) ?? ''))[0]!;
    const term = newest.status?.containerStatuses?.find((c) => c.state?.terminated)?.state?.terminated;
    r.pod = { name: newest.metadata?.name ?? '', phase: newest.status?.phase, exitCode: o.exitCode, reason: term?.reason, summary: summaryText(o.summary) };
  } else r.notes.push('no pod left for the Job (not started, or removed)');
  const events = await d.core.listNamespacedEvent({ namespace: r.job.namespace, fieldSelector: `involvedObject.kind=Job,involvedObject.name=${name}` });
  r.events = events.items
    .map((e) => ({ type: e.type, reason: e.reason, note: e.message, at: iso(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp) }))
    .sort((a, b) => (a.at ?? '').localeCompare(b.at ?? ''));
  return r;
}

/** `<partition>/<offset>`, as `--at`, `--from-dlq` and `--source` take it; anything else is a ConfigError. */
export function parseAt(s: string): { partition: number; offset: string } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  if (!m) throw new ConfigError(`expected <partition>/<offset>, got ${JSON.stringify(s)}`);
  return { partition: Number(m[1]), offset: m[2]! };
}

/** The most records `--scan` reads per partition: a bound on what one trace costs the brokers. */
export const MAX_SCAN = 100_000;

/** `--scan` as a count of records per partition, an integer 1..MAX_SCAN; anything else is a ConfigError. */
export function parseScanLimit(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_SCAN)
    throw new ConfigError(`--scan must be a whole number of records from 1 to ${MAX_SCAN}, got ${JSON.stringify(String(v))}`);
  return n;
}

/**
 * A string with C0 and C1 control characters removed (tab, newline and carriage return become
 * a space): error headers, Event notes and summaries are text a producer or a Job wrote, and
 * an escape sequence in them must not drive the terminal `trace` prints to.
 */
export function withoutControls(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\t\n\r]/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
}

/** Every string in `v`, at any depth, without control characters. */
function scrub<T>(v: T): T {
  if (typeof v === 'string') return withoutControls(v) as T;
  if (Array.isArray(v)) return v.map(scrub) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrub(x)])) as T;
  return v;
}

/** The report on one screen; every field is printed without control characters. */
export function formatTrace(report: TraceReport): string {
  const r = scrub(report);
  const out: string[] = [];
  const c = r.coordinates;
  out.push(`message      ${c ? `${c.topic}/${c.partition}/${c.offset}` : '?'}   jobID ${r.jobID ?? '?'}`);
  if (r.job) {
    const j = r.job;
    const state =
      j.conditions.find((x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True')?.type ?? (j.suspended ? 'Suspended' : 'Running');
    out.push(
      `job          ${j.namespace}/${j.name}   ${state}   created ${j.created ?? '?'}${j.queue ? `   queue ${j.queue}` : ''}${j.outcomeRecorded ? `   outcome recorded: ${j.outcomeRecorded}` : ''}`,
    );
    out.push(`             pods active ${j.active}, succeeded ${j.succeeded}, failed ${j.failed}`);
    for (const x of j.conditions)
      out.push(
        `  condition  ${x.type}=${x.status}${x.reason ? ` ${x.reason}` : ''}${x.message ? `: ${x.message.slice(0, 160)}` : ''}${x.at ? `  (${x.at})` : ''}`,
      );
  }
  if (r.pod)
    out.push(
      `pod          ${r.pod.name}   ${r.pod.phase ?? '?'}${r.pod.exitCode !== undefined ? `   exit ${r.pod.exitCode}` : ''}${r.pod.reason ? ` (${r.pod.reason})` : ''}${r.pod.summary ? `\n  summary    ${r.pod.summary}` : ''}`,
    );
  for (const d of r.deadLetters)
    out.push(
      `dead-letter  ${d.topic}/${d.partition}@${d.offset}   ${d.reason ?? '?'} (stage ${d.stage ?? '?'}, ${d.at ?? '?'})${d.error ? `\n  error      ${d.error.slice(0, 240)}` : ''}`,
    );
  for (const x of r.results) out.push(`result       ${x.topic}/${x.partition}@${x.offset}   ${x.status ?? '?'}${x.reason ? ` ${x.reason}` : ''}`);
  for (const e of r.events.slice(-8)) out.push(`event        ${e.type ?? ''} ${e.reason ?? ''}: ${(e.note ?? '').slice(0, 160)}`);
  for (const n of r.notes) out.push(`note         ${n}`);
  return `${out.join('\n')}\n`;
}

/**
 * A TailScan on Kafka: per partition, the records in [end - limit, end), read straight from the
 * leaders (no consumer group). A topic that does not exist has no records.
 */
export function kafkaTailScan(connection: KafkaConnection): { scan: TailScan; close: () => Promise<void> } {
  const admin = createKafka(connection, { retry: { retries: 3 } }).admin();
  const reader = new PartitionReader({ connection });
  let connected: Promise<void> | undefined;
  const scan: TailScan = async (topic, limit, match) => {
    await (connected ??= admin.connect());
    let ends: { partition: number; low: string; high: string }[];
    try {
      ends = await admin.fetchTopicOffsets(topic);
    } catch (err) {
      if ((err as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION') return [];
      throw err;
    }
    const found: (FetchedRecord & { partition: number })[] = [];
    for (const e of ends) {
      const high = BigInt(e.high);
      const from = high - BigInt(limit) > BigInt(e.low) ? high - BigInt(limit) : BigInt(e.low);
      for await (const rec of reader.range(topic, e.partition, from, high)) if (match(rec)) found.push({ ...rec, partition: e.partition });
    }
    return found;
  };
  return {
    scan,
    close: async () => {
      await reader.close();
      if (connected) await admin.disconnect().catch(() => undefined);
    },
  };
}

/**
 * `trace`: where a message is — its Job, the Job's conditions, its pod, and any dead-letter or
 * results record. Prints the report; exit code 3 when nothing at all is found.
 */
export async function traceCommand(cfg: ControllerConfig, argv: Record<string, unknown>, kc: KubeConfig): Promise<number> {
  const scanLimit = parseScanLimit(argv.scan);
  const target: TraceTarget =
    argv['job-id'] !== undefined ? { jobId: String(argv['job-id']) } : argv.at !== undefined ? { at: parseAt(String(argv.at)) } : { job: String(argv.job) };
  const connection = kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-trace`, security: cfg });
  const tail = kafkaTailScan(connection);
  try {
    const report = await trace(
      {
        config: cfg,
        batch: kc.makeApiClient(BatchV1Api),
        core: kc.makeApiClient(CoreV1Api),
        read: (at) => readOneMessage(connection, at),
        scan: tail.scan,
        scanLimit,
      },
      target,
    );
    process.stdout.write(argv.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatTrace(report));
    return !report.job && !report.deadLetters.length && !report.results.length ? 3 : 0;
  } finally {
    await tail.close();
  }
}
