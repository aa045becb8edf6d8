import { InitFailure } from './failures.js';

export class DeadlineExpired extends Error {
  override readonly name = 'DeadlineExpired';
}

/**
 * One server's single deadline. The SDK's own timeouts cover requests, not a transport's start
 * (an SSE endpoint that never sends its `endpoint` event waits forever), so every phase is raced
 * against this clock, and on expiry `onExpire` closes the transport so nothing keeps running.
 */
export class Deadline {
  private readonly started = performance.now();
  private timer?: NodeJS.Timeout;
  private readonly expired: Promise<never>;
  constructor(
    readonly ms: number,
    onExpire: () => void,
  ) {
    this.expired = new Promise((_, reject) => {
      this.timer = setTimeout(() => {
        reject(new DeadlineExpired());
        onExpire();
      }, ms);
    });
    this.expired.catch(() => undefined);
  }
  /** What is left, for the SDK's own request timeouts (at least 1 ms: 0 would mean none). */
  remaining(): number {
    return Math.max(1, Math.round(this.ms - (performance.now() - this.started)));
  }
  async run<T>(phase: string, work: Promise<T>): Promise<T> {
    work.catch(() => undefined);
    try {
      return await Promise.race([work, this.expired]);
    } catch (err) {
      if (err instanceof DeadlineExpired) {
        throw new InitFailure('failed-retriable', 'timeout', `${phase}: no answer within the ${this.ms} ms deadline`);
      }
      throw err;
    }
  }
  clear(): void {
    clearTimeout(this.timer);
  }
}
