import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { ControllerExit, untilExit, type Runnable } from '../../../src/controller/commands/run.js';
import { Lifecycle } from '../../../src/controller/lifecycle.js';
import { FatalError } from '../../../src/shared/errors.js';

const log = pino({ level: 'silent' });

/** A batch that settles when told to, standing for processBatch committing what exists. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

describe('Lifecycle: crash', () => {
  it('rejects done with a FatalError, says why once, and turns not live and not ready', async () => {
    const told: string[] = [];
    const life = new Lifecycle(log, (why) => told.push(why));
    life.joinedGroup();
    assert.equal(life.ready(true), true);
    life.crash(new Error('the brokers refused us'));
    life.crash(new Error('a second reason'));
    await assert.rejects(life.done, (err: Error) => err instanceof FatalError && /the brokers refused us/.test(err.message));
    assert.deepEqual(told.length, 1);
    assert.equal(life.live(), false);
    assert.equal(life.ready(true), false);
    assert.equal(life.mayRestartConsumer(), false, 'kafkajs must not restart a consumer we judged fatal');
  });

  it('refuses new batches once crashed', async () => {
    const life = new Lifecycle(log);
    life.crash(new FatalError('gone'));
    let ran = false;
    await assert.rejects(
      life.track(async () => void (ran = true)),
      /gone/,
    );
    assert.equal(ran, false);
  });

  it('judges a consumer crash: a restart outside a stop is restarting, a final one is fatal, an undecodable record its own case, and any during a stop expected', () => {
    const life = new Lifecycle(log);
    life.joinedGroup();
    assert.equal(life.consumerCrashed(new Error('x'), true), 'restarting');
    assert.equal(life.ready(true), false, 'out of the group until it joins again');
    assert.equal(life.consumerCrashed(new Error('x'), false), 'fatal');
    // kafkajs wraps the codec's refusal in the error the consumer crashes with.
    const undecodable = Object.assign(new Error('retries exceeded'), {
      cause: Object.assign(new Error('Snappy compression not implemented'), { name: 'KafkaJSNotImplemented' }),
    });
    assert.equal(life.consumerCrashed(undecodable, false), 'undecodable');
    void life.drain();
    assert.equal(life.consumerCrashed(new Error('x'), false), 'expected');
    assert.equal(life.consumerCrashed(new Error('x'), true), 'expected');
  });
});

describe('Lifecycle: drain and shutdown', () => {
  it('drains: aborts the stop signal at once, then waits for every batch in flight to settle', async () => {
    const life = new Lifecycle(log);
    const a = gate();
    const b = gate();
    void life.track(() => a.p);
    void life.track(() => b.p);
    assert.equal(life.inFlight, 2);
    let woken = false;
    let drained = false;
    const d = life.drain(() => (woken = true)).then(() => (drained = true));
    assert.equal(life.stopping.signal.aborted, true);
    assert.equal(woken, true, 'handlers waiting for a slot are woken to see the stop');
    a.open();
    await a.p;
    await new Promise(setImmediate);
    assert.equal(drained, false, 'one batch still in flight');
    b.open();
    await d;
    assert.equal(life.inFlight, 0);
  });

  it('shuts down once however often asked: drain first, then each close step in order, then done resolves', async () => {
    const life = new Lifecycle(log);
    const batch = gate();
    const order: string[] = [];
    void life.track(() => batch.p.then(() => void order.push('batch committed')));
    const steps = [
      ['consumer', () => void order.push('consumer')],
      ['broken', () => Promise.reject(new Error('already closed'))],
      ['producer', () => void order.push('producer')],
    ] as const;
    const first = life.shutdown(steps);
    const second = life.shutdown(steps);
    assert.equal(first, second);
    batch.open();
    await first;
    await life.done;
    assert.deepEqual(order, ['batch committed', 'consumer', 'producer'], 'a failing step does not stop the ones after it');
  });
});

/** A controller whose start, stop and crash the test decides. */
function runnable(opts: { startFails?: boolean; stopHangs?: boolean } = {}) {
  let crash!: (err: Error) => void;
  let finish!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    crash = reject;
  });
  const calls: string[] = [];
  const r: Runnable = {
    start: async () => {
      calls.push('start');
      if (opts.startFails) throw new Error('SASL authentication failed');
    },
    stop: () => {
      calls.push('stop');
      if (opts.stopHangs) return new Promise<void>(() => undefined);
      finish();
      return Promise.resolve();
    },
    done,
  };
  return { r, crash, calls };
}

function signals() {
  let fire: ((s: string) => void) | undefined;
  return { onSignal: (stop: (s: string) => void) => void (fire = stop), fire: (s: string) => fire?.(s) };
}

describe('untilExit: the exit code', () => {
  it('is 0 after a signal stops the controller gracefully', async () => {
    const { r, calls } = runnable();
    const sig = signals();
    const code = untilExit(r, { log, shutdownTimeoutMs: 0, onSignal: sig.onSignal, flush: async () => undefined });
    await new Promise(setImmediate);
    sig.fire('SIGTERM');
    assert.equal(await code, ControllerExit.stopped);
    assert.deepEqual(calls, ['start', 'stop']);
  });

  it('is non-zero when the controller crashes, after flushing its last lines', async () => {
    const { r, crash } = runnable();
    let flushed = false;
    const code = untilExit(r, { log, shutdownTimeoutMs: 0, onSignal: () => undefined, flush: async () => void (flushed = true) });
    await new Promise(setImmediate);
    crash(new FatalError('the consumer stopped for good'));
    assert.equal(await code, ControllerExit.failed);
    assert.equal(flushed, true);
  });

  it('is non-zero when the controller cannot start', async () => {
    const { r } = runnable({ startFails: true });
    assert.equal(await untilExit(r, { log, shutdownTimeoutMs: 0, onSignal: () => undefined, flush: async () => undefined }), ControllerExit.failed);
  });

  it('is non-zero when a stop outlasts SHUTDOWN_TIMEOUT_MS', async () => {
    const { r } = runnable({ stopHangs: true });
    const sig = signals();
    const code = untilExit(r, { log, shutdownTimeoutMs: 20, onSignal: sig.onSignal, flush: async () => undefined });
    await new Promise(setImmediate);
    sig.fire('SIGTERM');
    assert.equal(await code, ControllerExit.failed);
  });
});
