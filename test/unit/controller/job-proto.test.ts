import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeSlimJob, decodeWatchEvent, ProtoError, WatchFrames, watchBodyReader } from '../../../src/controller/kube/job-proto.js';

/** A small protobuf writer, so each case below states its bytes field by field. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 128) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
function field(f: number, v: number | string | number[]): number[] {
  if (typeof v === 'number') return [...varint(f * 8), ...varint(v)];
  const bytes = typeof v === 'string' ? [...Buffer.from(v)] : v;
  return [...varint(f * 8 + 2), ...varint(bytes.length), ...bytes];
}
const MAGIC = [0x6b, 0x38, 0x73, 0x00];
/** metav1.Time as Kubernetes encodes it: seconds = 1, nanos = 2; the zero time as no bytes. */
const time = (iso?: string) => (iso ? [...field(1, Date.parse(iso) / 1000), ...field(2, 0)] : []);
const entry = (k: string, v: string) => [...field(1, k), ...field(2, v)];

/** A WatchEvent frame (type, RawExtension{raw: magic + Unknown{typeMeta, raw}}), length-prefixed. */
function frame(type: string, kind: string, object: number[]): number[] {
  const unknown = [
    ...MAGIC,
    ...field(1, [...field(1, kind === 'Status' ? 'v1' : 'batch/v1'), ...field(2, kind)]),
    ...field(2, object),
    ...field(3, ''),
    ...field(4, ''),
  ];
  const event = [...field(1, type), ...field(2, field(1, unknown))];
  const n = event.length;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...event];
}

/** A finished Job as the API server writes it: empty strings and zero counters included, a pod template to skip. */
const finishedJob = [
  ...field(
    1,
    [
      ...field(1, 'mcp-orders-0-42'),
      ...field(2, ''),
      ...field(3, 'jobs'),
      ...field(4, ''),
      ...field(5, 'uid-1'),
      ...field(6, '1234'),
      ...field(7, 1),
      ...field(8, time('2026-11-24T07:22:08Z')),
      ...field(9, time()),
      ...field(11, entry('app', 'mcp')),
      ...field(11, entry('mcp.example/reported', '')),
      ...field(12, entry('mcp.example/offset', '42')),
      ...field(17, field(1, 'kube-controller-manager')),
    ].flat(),
  ),
  ...field(2, [...field(6, field(1, field(1, 'ignored-pod-template'))), ...field(10, 0)]),
  ...field(
    3,
    [
      ...field(1, [
        ...field(1, 'Complete'),
        ...field(2, 'True'),
        ...field(3, time()),
        ...field(4, time('2026-11-24T07:22:09Z')),
        ...field(5, 'CompletionsReached'),
        ...field(6, ''),
      ]),
      ...field(2, time('2026-11-24T07:22:08Z')),
      ...field(3, time('2026-11-24T07:22:09Z')),
      ...field(4, 0),
      ...field(5, 1),
      ...field(6, 0),
      ...field(9, 0),
    ].flat(),
  ),
];

describe('the protobuf Job watch', () => {
  it('refuses a frame longer than any Job event rather than waiting for gigabytes', () => {
    // '{"ty' read as a length: a JSON body taken for protobuf.
    assert.throws(() => new WatchFrames().push(Buffer.from('{"type":"ADDED"}')), ProtoError);
    assert.throws(() => watchBodyReader('application/vnd.kubernetes.protobuf;stream=watch').push(Uint8Array.from([0x7f, 0xff, 0xff, 0xff])), ProtoError);
  });

  it('reads JSON lines whole when a character or a line is split between chunks, and refuses other content types', () => {
    const body = Buffer.from(
      '{"type":"ADDED","object":{"metadata":{"name":"a","annotations":{"n":"ünï ✓"}}}}\n{"type":"DELETED","object":{"metadata":{"name":"a"}}}\n',
    );
    for (let cut = 1; cut < body.length; cut++) {
      const r = watchBodyReader('application/json');
      const seen = [...r.push(body.subarray(0, cut)), ...r.push(body.subarray(cut))];
      r.end();
      assert.deepEqual(
        seen.map((e) => `${e.type} ${e.object.metadata?.annotations?.n ?? ''}`),
        ['ADDED ünï ✓', 'DELETED '],
        `cut at ${cut}`,
      );
    }
    const r = watchBodyReader('application/json');
    r.push(body.subarray(0, 10));
    assert.throws(() => r.end(), /inside an event/);
    assert.throws(() => watchBodyReader('text/html; charset=utf-8'), /neither protobuf nor JSON/);
  });

  it('decodes a Job to the slim form, leaving out what JSON leaves out: empty strings, zero counters, the zero time', () => {
    assert.deepEqual(decodeSlimJob(Uint8Array.from(finishedJob)), {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'mcp-orders-0-42',
        namespace: 'jobs',
        uid: 'uid-1',
        resourceVersion: '1234',
        creationTimestamp: '2026-11-24T07:22:08Z',
        labels: { app: 'mcp', 'mcp.example/reported': '' },
        annotations: { 'mcp.example/offset': '42' },
      },
      spec: { template: {}, suspend: false },
      // ready is a pointer in the Go type: JSON keeps its 0, as it drops active's and failed's.
      status: {
        conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: '2026-11-24T07:22:09Z', reason: 'CompletionsReached' }],
        startTime: '2026-11-24T07:22:08Z',
        completionTime: '2026-11-24T07:22:09Z',
        succeeded: 1,
        ready: 0,
      },
    });
  });

  it('reads ADDED, BOOKMARK and ERROR events from a stream cut at every possible place', () => {
    const bookmark = [...field(1, [...field(6, '99'), ...field(8, time())].flat())];
    const gone = [...field(3, 'too old resource version'), ...field(4, 'Expired'), ...field(6, 410)];
    const stream = Uint8Array.from([...frame('ADDED', 'Job', finishedJob), ...frame('BOOKMARK', 'Job', bookmark), ...frame('ERROR', 'Status', gone)]);
    const expected = [
      ['ADDED', '1234', undefined],
      ['BOOKMARK', '99', undefined],
      ['ERROR', undefined, 410],
    ];
    for (let size = 1; size <= stream.length; size++) {
      const frames = new WatchFrames();
      const seen: unknown[] = [];
      for (let p = 0; p < stream.length; p += size)
        for (const f of frames.push(stream.subarray(p, p + size))) {
          const e = decodeWatchEvent(f);
          seen.push([e.type, e.object.metadata?.resourceVersion, e.object.code]);
        }
      assert.deepEqual(seen, expected, `chunks of ${size} bytes`);
      assert.equal(frames.buffered, 0);
    }
  });

  it('keeps the bytes of an unfinished frame until the rest arrives', () => {
    const frames = new WatchFrames();
    const f = Uint8Array.from(frame('ADDED', 'Job', finishedJob));
    assert.deepEqual(frames.push(f.subarray(0, f.length - 1)), []);
    assert.equal(frames.buffered, f.length - 1);
    assert.equal(frames.push(f.subarray(f.length - 1)).length, 1);
    // A body cut inside a frame is a network fault (resumed), not a stream protobuf cannot read (which gives protobuf up).
    const cut = watchBodyReader('application/vnd.kubernetes.protobuf;stream=watch');
    cut.push(f.subarray(0, 10));
    assert.throws(
      () => cut.end(),
      (err: unknown) => err instanceof Error && !(err instanceof ProtoError) && /inside an event/.test(err.message),
    );
  });

  it('refuses what is not a protobuf Job event instead of handing out an empty Job', () => {
    const notMagic = Uint8Array.from(frame('ADDED', 'Job', finishedJob)).subarray(4);
    const magicAt = Buffer.from(notMagic).indexOf(Buffer.from(MAGIC));
    assert.equal(Buffer.from(notMagic).lastIndexOf(Buffer.from(MAGIC)), magicAt, 'the magic bytes appear once, opening the object');
    notMagic[magicAt] = 0x7b; // '{': a JSON object where the magic bytes belong
    assert.throws(() => decodeWatchEvent(notMagic), /not a protobuf-encoded Kubernetes object/);
    assert.throws(() => decodeWatchEvent(Uint8Array.from(frame('ADDED', 'Pod', finishedJob)).subarray(4)), /a Pod, not a Job/);
    assert.throws(() => decodeSlimJob(Uint8Array.from(finishedJob).subarray(0, 40)), ProtoError);
  });
});
