/**
 * The kafkajs internals the job's one-record reader and the codecs use (kafkajs is pinned
 * exactly in package.json, so these do not move). Importing them, not the package's index,
 * keeps the job from loading kafkajs' consumer, producer and admin (see src/shared/kafka/read-message.ts).
 */
declare module 'kafkajs/src/cluster/index.js' {
  const Cluster: new (opts: object) => unknown;
  export default Cluster;
}
declare module 'kafkajs/src/loggers/index.js' {
  import type { logLevel } from 'kafkajs';
  const loggers: { LEVELS: typeof logLevel; createLogger(o: object): unknown };
  export default loggers;
}
declare module 'kafkajs/src/loggers/console.js' {
  import type { logCreator } from 'kafkajs';
  const consoleLogCreator: logCreator;
  export default consoleLogCreator;
}
declare module 'kafkajs/src/network/socketFactory.js' {
  const socketFactory: () => unknown;
  export default socketFactory;
}
declare module 'kafkajs/src/protocol/message/compression/index.js' {
  import type { CompressionTypes } from 'kafkajs';
  const compression: { Types: typeof CompressionTypes; Codecs: Record<number, unknown> };
  export default compression;
}
declare module 'kafkajs/src/errors.js' {
  const errors: { KafkaJSNotImplemented: new (message: string) => Error };
  export default errors;
}
declare module 'kafkajs/src/consumer/filterAbortedMessages.js' {
  /** Drops the records of aborted transactions (kafkajs' consumer does this; a raw fetch does not). */
  const filterAbortedMessages: <M>(o: { messages: M[]; abortedTransactions?: { producerId: string; firstOffset: string }[] }) => M[];
  export default filterAbortedMessages;
}
