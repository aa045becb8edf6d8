import type * as k8s from '@kubernetes/client-node';

/**
 * The Job watch in Kubernetes' protobuf encoding, decoded to the slim Job the controller keeps
 * (see slimJob): a JSON watch makes the API server encode every event to JSON for this one
 * watcher, while the protobuf encoding of each event is made once and shared with the
 * controller-manager's own Job watches. `npm run bench` priced the JSON watch at 0.35–0.40 ms of
 * API server CPU per Job, a tenth of what the create itself costs there. Only the fields the
 * controller reads are decoded; the pod template and managedFields — most of a Job's bytes —
 * are skipped by their length without being looked at. Pure: bytes in, objects out.
 *
 * Field numbers are Kubernetes' generated.proto (k8s.io/api/batch/v1,
 * k8s.io/apimachinery/pkg/apis/meta/v1), which the API guarantees never to renumber. What JSON
 * leaves out (empty strings, zero counters that are not pointers, the zero time) is left out
 * here too, so a decoded Job reads like a listed one.
 */

/** The protobuf stream is not what Kubernetes sends: a bug on one side, not a fault to retry. */
export class ProtoError extends Error {}

/** The four bytes Kubernetes puts before every protobuf-encoded object. */
const MAGIC = [0x6b, 0x38, 0x73, 0x00];
const utf8 = new TextDecoder();

interface Cursor {
  b: Uint8Array;
  p: number;
}

function varint(c: Cursor): number {
  let x = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    const byte = c.b[c.p++];
    if (byte === undefined) throw new ProtoError('truncated varint');
    x += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return x;
    mul *= 128;
  }
  throw new ProtoError('varint longer than 10 bytes');
}

/**
 * Calls `on` for each field of the message in b[start, end): `v` is a varint's value, or for a
 * length-delimited field the start of its bytes, which end at `to`. Other wire types are skipped.
 */
function walk(b: Uint8Array, start: number, end: number, on: (field: number, wire: number, v: number, to: number) => void): void {
  const c: Cursor = { b, p: start };
  while (c.p < end) {
    const tag = varint(c);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) on(field, wire, varint(c), c.p);
    else if (wire === 2) {
      const len = varint(c);
      const from = c.p;
      c.p += len;
      if (c.p > end) throw new ProtoError(`field ${field} runs past its message`);
      on(field, wire, from, c.p);
    } else if (wire === 1) c.p += 8;
    else if (wire === 5) c.p += 4;
    else throw new ProtoError(`unsupported wire type ${wire} (field ${field})`);
  }
  if (c.p !== end) throw new ProtoError('message ends inside a field');
}

const str = (b: Uint8Array, from: number, to: number) => utf8.decode(b.subarray(from, to));

/**
 * A metav1.Time as its JSON form (RFC 3339, whole seconds, UTC, as metav1.Time writes it);
 * undefined for the zero time, which Kubernetes encodes as no bytes (JSON: null or absent).
 */
function time(b: Uint8Array, from: number, to: number): string | undefined {
  if (from === to) return undefined;
  let seconds = 0;
  walk(b, from, to, (f, w, v) => {
    if (f === 1 && w === 0) seconds = v;
  });
  // A negative int64 arrives as a 10-byte two's-complement varint: a huge number here, and no real time.
  if (seconds >= 2 ** 53) return undefined;
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** One map<string,string> entry (key = 1, value = 2) into `into`. */
function entry(b: Uint8Array, from: number, to: number, into: Record<string, string>): void {
  let k = '';
  let val = '';
  walk(b, from, to, (f, w, v, t) => {
    if (w !== 2) return;
    if (f === 1) k = str(b, v, t);
    else if (f === 2) val = str(b, v, t);
  });
  into[k] = val;
}

/**
 * Walks a message whose string and metav1.Time fields land in `into` under the names
 * `strings` and `times` give their numbers (an empty string and the zero time left out, as
 * JSON leaves them out); every other field goes to `other`.
 */
function named(
  b: Uint8Array,
  from: number,
  to: number,
  into: Record<string, unknown>,
  strings: Record<number, string>,
  times: Record<number, string>,
  other: (field: number, wire: number, v: number, to: number) => void = () => undefined,
): void {
  walk(b, from, to, (f, w, v, t) => {
    const s = w === 2 ? strings[f] : undefined;
    const at = w === 2 ? times[f] : undefined;
    if (s) {
      if (t > v) into[s] = str(b, v, t);
    } else if (at) {
      const value = time(b, v, t);
      if (value) into[at] = value;
    } else other(f, w, v, t);
  });
}

function metadata(b: Uint8Array, from: number, to: number): k8s.V1ObjectMeta {
  const m: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  let hasLabels = false;
  let hasAnnotations = false;
  named(b, from, to, m, { 1: 'name', 3: 'namespace', 5: 'uid', 6: 'resourceVersion' }, { 8: 'creationTimestamp', 9: 'deletionTimestamp' }, (f, w, v, t) => {
    if (w === 2 && f === 11) {
      hasLabels = true;
      entry(b, v, t, labels);
    } else if (w === 2 && f === 12) {
      hasAnnotations = true;
      entry(b, v, t, annotations);
    }
  });
  if (hasLabels) m.labels = labels;
  if (hasAnnotations) m.annotations = annotations;
  return m as k8s.V1ObjectMeta;
}

function condition(b: Uint8Array, from: number, to: number): k8s.V1JobCondition {
  const c: Record<string, unknown> = {};
  named(b, from, to, c, { 1: 'type', 2: 'status', 5: 'reason', 6: 'message' }, { 3: 'lastProbeTime', 4: 'lastTransitionTime' });
  return c as unknown as k8s.V1JobCondition;
}

function status(b: Uint8Array, from: number, to: number): k8s.V1JobStatus {
  const s: Record<string, unknown> = {};
  const conditions: k8s.V1JobCondition[] = [];
  named(b, from, to, s, {}, { 2: 'startTime', 3: 'completionTime' }, (f, w, v, t) => {
    if (w === 2 && f === 1) conditions.push(condition(b, v, t));
    else if (w === 0) {
      // active, succeeded, failed are plain int32s (JSON omits 0); ready and terminating are pointers (JSON keeps 0).
      const counter = ({ 4: 'active', 5: 'succeeded', 6: 'failed' } as Record<number, string>)[f];
      const pointer = ({ 9: 'ready', 11: 'terminating' } as Record<number, string>)[f];
      if (counter && v !== 0) s[counter] = v;
      else if (pointer) s[pointer] = v;
    }
  });
  if (conditions.length) s.conditions = conditions;
  return s as k8s.V1JobStatus;
}

/** A batch/v1 Job's bytes as the slim Job the controller keeps. */
export function decodeSlimJob(b: Uint8Array, from = 0, to = b.length): k8s.V1Job {
  const job: k8s.V1Job = { apiVersion: 'batch/v1', kind: 'Job', metadata: {}, spec: { template: {} }, status: {} };
  walk(b, from, to, (f, w, v, t) => {
    if (w !== 2) return;
    if (f === 1) job.metadata = metadata(b, v, t);
    else if (f === 3) job.status = status(b, v, t);
    else if (f === 2)
      walk(b, v, t, (sf, sw, sv) => {
        if (sf === 10 && sw === 0) job.spec!.suspend = sv !== 0;
      });
  });
  return job;
}

/** A watch event: its type and its object, a slim Job or (for ERROR) what the Status says. */
export type WatchEvent = { type: string; object: k8s.V1Job & { code?: number; reason?: string; message?: string } };

/**
 * One frame of a `application/vnd.kubernetes.protobuf;stream=watch` body: a WatchEvent
 * (type = 1, object = 2, a RawExtension whose raw = 1), whose object is the magic bytes and a
 * runtime.Unknown (typeMeta = 1 with kind = 2; raw = 2).
 */
export function decodeWatchEvent(frame: Uint8Array): WatchEvent {
  let type = '';
  let raw: [number, number] | undefined;
  walk(frame, 0, frame.length, (f, w, v, t) => {
    if (w !== 2) return;
    if (f === 1) type = str(frame, v, t);
    else if (f === 2)
      walk(frame, v, t, (rf, rw, rv, rt) => {
        if (rf === 1 && rw === 2) raw = [rv, rt];
      });
  });
  if (!raw) throw new ProtoError(`watch event ${type || '(no type)'} has no object`);
  const [from, to] = raw;
  for (let i = 0; i < MAGIC.length; i++)
    if (frame[from + i] !== MAGIC[i]) throw new ProtoError('watch event object is not a protobuf-encoded Kubernetes object');
  let kind = '';
  let object: [number, number] | undefined;
  walk(frame, from + MAGIC.length, to, (f, w, v, t) => {
    if (w !== 2) return;
    if (f === 1)
      walk(frame, v, t, (tf, tw, tv, tt) => {
        if (tf === 2 && tw === 2) kind = str(frame, tv, tt);
      });
    else if (f === 2) object = [v, t];
  });
  if (!object) throw new ProtoError(`watch event ${type} carries an empty ${kind || 'object'}`);
  if (kind === 'Status') {
    // metav1.Status: message = 3, reason = 4, code = 6; what an ERROR event says went wrong.
    const st: { code?: number; reason?: string; message?: string } = {};
    walk(frame, object[0], object[1], (f, w, v, t) => {
      if (f === 6 && w === 0) st.code = v;
      else if (f === 3 && w === 2 && t > v) st.message = str(frame, v, t);
      else if (f === 4 && w === 2 && t > v) st.reason = str(frame, v, t);
    });
    return { type, object: st };
  }
  if (kind !== 'Job') throw new ProtoError(`watch event ${type} carries a ${kind || 'kindless object'}, not a Job`);
  return { type, object: decodeSlimJob(frame, object[0], object[1]) };
}

/** A larger frame is not a Job event (the API server's own limit on a request is 3 MiB): the stream is not what we think. */
export const MAX_FRAME_BYTES = 64 * 2 ** 20;

/**
 * Splits a watch body into its frames: each a 4-byte big-endian length, then that many bytes.
 * Chunks from the network split frames anywhere; what is left over waits for the next chunk.
 */
export class WatchFrames {
  private pending: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const b = this.pending.length ? concat(this.pending, chunk) : chunk;
    const out: Uint8Array[] = [];
    let p = 0;
    while (b.length - p >= 4) {
      const len = ((b[p]! << 24) >>> 0) + (b[p + 1]! << 16) + (b[p + 2]! << 8) + b[p + 3]!;
      if (len > MAX_FRAME_BYTES) throw new ProtoError(`a watch frame of ${len} bytes: not a length-prefixed protobuf stream`);
      if (b.length - p - 4 < len) break;
      out.push(b.subarray(p + 4, p + 4 + len));
      p += 4 + len;
    }
    this.pending = b.slice(p);
    return out;
  }

  /** Bytes of a frame not yet complete (the stream ended inside one if this is not 0 at the end). */
  get buffered(): number {
    return this.pending.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export const PROTOBUF_WATCH = 'application/vnd.kubernetes.protobuf;stream=watch';

/**
 * Reads a watch body of the content type the API server answered with: protobuf frames, or
 * JSON lines (what a server that cannot encode protobuf sends, and what the client asks for
 * once protobuf has failed it). Characters split between chunks stay whole. `end` throws if
 * the body stopped inside an event. Anything else is refused up front.
 */
export function watchBodyReader(contentType: string): { push(chunk: Uint8Array): WatchEvent[]; end(): void } {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/vnd.kubernetes.protobuf') {
    const frames = new WatchFrames();
    return {
      push: (chunk) => frames.push(chunk).map(decodeWatchEvent),
      end: () => {
        // A connection cut mid-event: a network fault, resumed like one, not a reason to give up protobuf.
        if (frames.buffered) throw new Error(`the watch ended inside an event (${frames.buffered} bytes)`);
      },
    };
  }
  if (type === 'application/json') {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let text = '';
    return {
      push: (chunk) => {
        text += decoder.decode(chunk, { stream: true });
        const out: WatchEvent[] = [];
        let nl: number;
        while ((nl = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, nl);
          text = text.slice(nl + 1);
          if (line.trim()) out.push(JSON.parse(line) as WatchEvent);
        }
        if (text.length > MAX_FRAME_BYTES) throw new ProtoError(`a watch line of over ${MAX_FRAME_BYTES} characters`);
        return out;
      },
      end: () => {
        text += decoder.decode();
        if (text.trim()) throw new Error('the watch ended inside an event');
      },
    };
  }
  throw new ProtoError(`a watch answered in ${contentType || 'no content type'}, neither protobuf nor JSON`);
}
