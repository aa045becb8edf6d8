import type * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { describeError } from '../../shared/errors.js';
import { Annotation, type Coordinates } from '../../shared/contract/identity.js';
import type { Logger } from '../../shared/logger.js';
import type { JobOutcome } from './outcomes.js';
import { failureText } from './outcomes.js';

/** Fixed reasons, so `kubectl get events --field-selector reason=…` and alerts can rely on them. */
export const EventReason = {
  jobCreated: 'JobCreated',
  jobSucceeded: 'JobSucceeded',
  jobFailed: 'JobFailed',
  deadLettered: 'MessageDeadLettered',
  paused: 'ConsumptionPaused',
  resumed: 'ConsumptionResumed',
  consumerRestarted: 'ConsumerRestarted',
  crashed: 'ControllerCrashed',
} as const;

/** Fixed actions: what the controller did (events' `action`). */
export const EventAction = {
  create: 'CreateJob',
  record: 'RecordOutcome',
  deadLetter: 'DeadLetter',
  pause: 'PauseConsumption',
  resume: 'ResumeConsumption',
  restart: 'RestartConsumer',
  exit: 'Exit',
} as const;

/** The component name on every Event (`source.component`, `reportingComponent`). */
export const REPORTING_COMPONENT = 'mcp-job-controller';

/** The longest note kept; the API server refuses longer messages and a screen shows less. */
const MAX_NOTE = 1024;

export interface EventInput {
  regarding: k8s.V1ObjectReference;
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

/**
 * A core/v1 Event. core/v1, not events.k8s.io/v1: `kubectl describe` and `kubectl get events`
 * read both (one storage), and core/v1 needs no MicroTime `eventTime`, which client-node
 * serializes with milliseconds where the API server wants microseconds. Pure.
 */
export function buildEvent(e: EventInput, instance: string, now: Date, suffix: string): k8s.CoreV1Event {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${e.regarding.name}.${now.getTime().toString(16)}${suffix}`, namespace: e.regarding.namespace },
    involvedObject: e.regarding,
    type: e.type,
    reason: e.reason,
    action: e.action,
    message: e.note.length > MAX_NOTE ? `${e.note.slice(0, MAX_NOTE - 1)}…` : e.note,
    source: { component: REPORTING_COMPONENT },
    reportingComponent: REPORTING_COMPONENT,
    reportingInstance: instance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

export interface EventSink {
  createNamespacedEvent(p: { namespace: string; body: k8s.CoreV1Event }): Promise<unknown>;
}

export interface EventRecorderOptions {
  sink: EventSink;
  log: Logger;
  /** Counts each Event by result: sent, failed, dropped (the queue was full), sampled (a routine Event over its rate). */
  count?: (result: 'sent' | 'failed' | 'dropped' | 'sampled') => void;
  /** The controller's own object (its Pod); Events about the controller are skipped without it. */
  self?: k8s.V1ObjectReference;
  instance: string;
  /** Most Events waiting to be sent; more are dropped (and counted). */
  maxQueue?: number;
  /** Routine Events (a Job created or succeeded) sent per second at most, on average; more are dropped (and counted). */
  routinePerSecond?: number;
  now?: () => Date;
  /** A monotonic clock in ms, for the routine Events' rate (tests pass their own). */
  clock?: () => number;
}

/**
 * Each Event is a write the API server and etcd pay for, as much as a Job's own create
 * (`npm run bench` counts them per Job). On a backlog, one routine Event per Job would double
 * the writes the controller asks of the API server, to say what every Job's labels and
 * annotations already say; so routine Events are sampled at this rate, with a burst of 4
 * seconds' worth (an idle controller records every one of a handful of messages). Warnings
 * (a failed Job, a dead-lettered message, a pause) are never sampled.
 */
export const ROUTINE_EVENTS_PER_SECOND = 5;

/** Reasons that are routine: Normal, one per Job, and said by the Job's metadata too. */
const ROUTINE = new Set<string>([EventReason.jobCreated, EventReason.jobSucceeded]);

/**
 * Records Kubernetes Events without ever holding up or failing the work they describe:
 * `record` only queues (a bounded queue; what does not fit is dropped and counted), one sender
 * drains it, and a failed send is counted and logged at debug, never thrown. An Event is a
 * courtesy to whoever runs `kubectl describe`; the metrics, logs and records are the truth.
 */
export class EventRecorder {
  private readonly queue: EventInput[] = [];
  private sending?: Promise<void>;
  private warned = false;

  private tokens: number;
  private tokensAt: number;

  constructor(private readonly o: EventRecorderOptions) {
    this.tokens = this.burst;
    this.tokensAt = this.clock();
  }

  private clock(): number {
    return (this.o.clock ?? (() => performance.now()))();
  }

  private get rate(): number {
    return this.o.routinePerSecond ?? ROUTINE_EVENTS_PER_SECOND;
  }

  private get burst(): number {
    return this.rate * 4;
  }

  /** A token bucket for routine Events. */
  private admitRoutine(): boolean {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.rate);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  record(e: EventInput): void {
    if (ROUTINE.has(e.reason) && !this.admitRoutine()) {
      this.o.count?.('sampled');
      return;
    }
    if (this.queue.length >= (this.o.maxQueue ?? 256)) {
      this.o.count?.('dropped');
      return;
    }
    this.queue.push(e);
    this.startSender();
  }

  /**
   * One sender at a time. An Event recorded after `drain` emptied the queue but before its
   * promise settled saw a sender still running and started none: the sender restarts for it.
   */
  private startSender(): void {
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
      if (this.queue.length) this.startSender();
    });
  }

  private async drain(): Promise<void> {
    for (let e = this.queue.shift(); e; e = this.queue.shift()) {
      const body = buildEvent(e, this.o.instance, (this.o.now ?? (() => new Date()))(), randomBytes(4).toString('hex'));
      try {
        await this.o.sink.createNamespacedEvent({ namespace: e.regarding.namespace!, body });
        this.o.count?.('sent');
      } catch (err) {
        this.o.count?.('failed');
        // Once at warn (RBAC missing, say), then quietly: an Event is never worth a log flood.
        (this.warned ? this.o.log.debug : this.o.log.warn).call(
          this.o.log,
          { reason: e.reason, err: describeError(err) },
          'recording a kubernetes event failed',
        );
        this.warned = true;
      }
    }
  }

  /** Waits until the queue is sent, or `timeoutMs` (before an exit). */
  async flush(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const idle = async () => {
      // A restarted sender is a new promise: wait for each until none is left.
      while (this.sending) await this.sending;
    };
    await Promise.race([idle(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** An Event on the controller's own Pod; skipped (at debug) when the Pod is unknown, e.g. run outside a cluster. */
  private onSelf(type: EventInput['type'], reason: string, action: string, note: string): void {
    if (!this.o.self) {
      this.o.log.debug({ reason }, 'no POD_NAME/POD_NAMESPACE: controller event not recorded');
      return;
    }
    this.record({ regarding: this.o.self, type, reason, action, note });
  }

  jobCreated(job: { name: string; namespace: string; uid?: string }, at: Coordinates, jobID: string): void {
    this.record({
      regarding: jobRef(job),
      type: 'Normal',
      reason: EventReason.jobCreated,
      action: EventAction.create,
      note: `Created for message ${at.topic}/${at.partition}/${at.offset} (jobID ${jobID})`,
    });
  }

  jobFinished(job: k8s.V1Job, o: JobOutcome, deadLetterTopic: string): void {
    const ref = jobRef({ name: o.job, namespace: o.namespace, uid: job.metadata?.uid });
    const src = o.source
      ? `message ${o.source.topic}/${o.source.partition}/${o.source.offset} (jobID ${job.metadata?.annotations?.[Annotation.jobID] ?? '?'})`
      : 'message';
    if (o.status === 'succeeded') {
      this.record({ regarding: ref, type: 'Normal', reason: EventReason.jobSucceeded, action: EventAction.record, note: `Succeeded: ${src}` });
    } else {
      this.record({
        regarding: ref,
        type: 'Warning',
        reason: EventReason.jobFailed,
        action: EventAction.record,
        note: `${failureText(o)}; ${src} dead-lettered to ${deadLetterTopic}`,
      });
    }
  }

  /**
   * The reason and coordinates only: the error's text can quote the message, which a producer
   * wrote and an Event would show to everyone who can read Events; the dead-letter record has it.
   */
  deadLettered(at: Coordinates, reason: string, dlq: string): void {
    this.onSelf(
      'Warning',
      EventReason.deadLettered,
      EventAction.deadLetter,
      `Message ${at.topic}/${at.partition}/${at.offset} dead-lettered to ${dlq}: ${reason} (the record's error header says more)`,
    );
  }

  paused(on: boolean, reason: string): void {
    if (on)
      this.onSelf(
        'Normal',
        EventReason.paused,
        EventAction.pause,
        `Consumption paused: ${reason === 'cap' ? 'the active-Job cap is reached' : 'the namespace quota is full'}`,
      );
    else this.onSelf('Normal', EventReason.resumed, EventAction.resume, 'Consumption resumed');
  }

  consumerRestarted(error: string): void {
    this.onSelf('Warning', EventReason.consumerRestarted, EventAction.restart, `The Kafka consumer crashed and restarts: ${error}`);
  }

  crashed(error: string): void {
    this.onSelf('Warning', EventReason.crashed, EventAction.exit, `The controller cannot go on and exits: ${error}`);
  }
}

function jobRef(j: { name: string; namespace: string; uid?: string }): k8s.V1ObjectReference {
  return { apiVersion: 'batch/v1', kind: 'Job', name: j.name, namespace: j.namespace, ...(j.uid && { uid: j.uid }) };
}
