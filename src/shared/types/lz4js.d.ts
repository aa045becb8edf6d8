/** lz4js 0.2 ships no types: the two frame-format functions src/shared/kafka/kafka-codecs.ts uses. */
declare module 'lz4js' {
  const lz4js: {
    /** An LZ4 frame (magic 0x184D2204) of `src`. */
    compress(src: Uint8Array, maxSize?: number): Uint8Array;
    /** The content of an LZ4 frame; `maxSize` defaults to a bound read from the frame. */
    decompress(src: Uint8Array, maxSize?: number): Uint8Array;
  };
  export = lz4js;
}

/** lz4js' xxHash32, the frame header checksum's hash. */
declare module 'lz4js/xxh32.js' {
  const xxh32: { hash(seed: number, src: Uint8Array, index: number, length: number): number };
  export = xxh32;
}
