// A producer from outside Node: Kafka's own Java client, with every codec it ships
// (gzip in the JDK; snappy-java, lz4-java and zstd-jni are among the broker jars the test bed
// fetches). Run as a single source file (Java 11+), nothing to build:
//
//   java -cp '<kafka home>/libs/*' Producer.java --bootstrap 127.0.0.1:9092 --topic t \
//     [--partition 0] [--compression none|gzip|snappy|lz4|zstd] [--linger-ms 100] [--key k] \
//     [--security-protocol SASL_SSL --sasl-mechanism SCRAM-SHA-512 --username u --ca-file ca.crt] \
//     [--encoded] [--transactional-id id [--abort]] [--] [value ...]
//
// --encoded: each value is a whole record, `KEY<TAB>VALUE<TAB>HEADERS`, KEY and VALUE in base64
// or `-` for null (a tombstone has a null value), HEADERS `name:base64,...` (or empty).
// --transactional-id: all records go in one transaction, committed, or aborted with --abort (the
// records still take offsets, which read_committed consumers never see).
//
// Values are the arguments after the options, or else one per line of standard input. The
// SASL password comes from the environment (KAFKA_SASL_PASSWORD), not the command line, which
// other users of the machine can read. All records are sent before one flush, with a linger
// and a batch size large enough that they share one compressed batch. For each record, in
// order, one JSON line goes to standard output: {"partition":0,"offset":"42"} (the offset is a
// string, as kafkajs gives offsets). Anything else, logs included, goes to standard error.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import java.util.Base64;

public class Producer {
  public static void main(String[] argv) throws Exception {
    String bootstrap = null, topic = null, key = null, compression = "none", lingerMs = "100";
    String protocol = null, mechanism = null, username = null, caFile = null, transactionalId = null;
    boolean encoded = false, abort = false;
    Integer partition = null;
    List<String> values = new ArrayList<>();
    for (int i = 0; i < argv.length; i++) {
      String a = argv[i];
      if (a.equals("--")) {
        for (i++; i < argv.length; i++) values.add(argv[i]);
        break;
      }
      if (a.equals("--encoded")) {
        encoded = true;
        continue;
      }
      if (a.equals("--abort")) {
        abort = true;
        continue;
      }
      if (!a.startsWith("--")) {
        values.add(a);
        continue;
      }
      if (i + 1 >= argv.length) usage("missing value for " + a);
      String v = argv[++i];
      switch (a) {
        case "--bootstrap": bootstrap = v; break;
        case "--topic": topic = v; break;
        case "--partition": partition = Integer.valueOf(v); break;
        case "--key": key = v; break;
        case "--compression": compression = v; break;
        case "--linger-ms": lingerMs = v; break;
        case "--security-protocol": protocol = v; break;
        case "--sasl-mechanism": mechanism = v; break;
        case "--username": username = v; break;
        case "--ca-file": caFile = v; break;
        case "--transactional-id": transactionalId = v; break;
        default: usage("unknown option " + a);
      }
    }
    if (bootstrap == null || topic == null) usage("--bootstrap and --topic are required");
    if (values.isEmpty()) {
      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      for (String line; (line = in.readLine()) != null; ) values.add(line);
    }

    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("client.id", "testbed-java-producer");
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    if (transactionalId != null) p.put("transactional.id", transactionalId);
    p.put("acks", "all");
    p.put("compression.type", compression);
    p.put("linger.ms", lingerMs);
    p.put("batch.size", "1048576");
    // Fail within the caller's patience rather than the client's 60 s / 120 s defaults.
    p.put("max.block.ms", "20000");
    p.put("request.timeout.ms", "10000");
    p.put("delivery.timeout.ms", "30000");
    if (protocol != null) {
      p.put("security.protocol", protocol);
      if (protocol.startsWith("SASL")) {
        if (mechanism == null || username == null) usage("--sasl-mechanism and --username are required with " + protocol);
        String password = System.getenv("KAFKA_SASL_PASSWORD");
        if (password == null) usage("KAFKA_SASL_PASSWORD is not set");
        String module = mechanism.equals("PLAIN")
            ? "org.apache.kafka.common.security.plain.PlainLoginModule"
            : "org.apache.kafka.common.security.scram.ScramLoginModule";
        p.put("sasl.mechanism", mechanism);
        p.put("sasl.jaas.config", module + " required username=\"" + jaasQuote(username) + "\" password=\"" + jaasQuote(password) + "\";");
      }
      if (protocol.endsWith("SSL") && caFile != null) {
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", caFile);
      }
    }

    List<Future<RecordMetadata>> sent = new ArrayList<>();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      if (transactionalId != null) {
        producer.initTransactions();
        producer.beginTransaction();
      }
      byte[] keyBytes = key == null ? null : key.getBytes(StandardCharsets.UTF_8);
      for (String value : values) {
        ProducerRecord<byte[], byte[]> r;
        if (encoded) {
          String[] f = value.split("\t", -1);
          if (f.length != 3) usage("an encoded record is KEY<TAB>VALUE<TAB>HEADERS");
          r = new ProducerRecord<>(topic, partition, decode(f[0]), decode(f[1]));
          if (!f[2].isEmpty()) {
            for (String h : f[2].split(",")) {
              int c = h.indexOf(':');
              r.headers().add(new RecordHeader(h.substring(0, c), Base64.getDecoder().decode(h.substring(c + 1))));
            }
          }
        } else {
          r = new ProducerRecord<>(topic, partition, keyBytes, value.getBytes(StandardCharsets.UTF_8));
        }
        sent.add(producer.send(r));
      }
      producer.flush();
      if (transactionalId != null) {
        if (abort) producer.abortTransaction();
        else producer.commitTransaction();
      }
      StringBuilder out = new StringBuilder();
      for (Future<RecordMetadata> f : sent) {
        RecordMetadata m = f.get();
        out.append("{\"partition\":").append(m.partition()).append(",\"offset\":\"").append(m.offset()).append("\"}\n");
      }
      System.out.print(out);
      System.out.flush();
      producer.close(Duration.ofSeconds(5));
    } catch (Exception e) {
      // A send fails through its future (ExecutionException) or, before it is queued
      // (metadata, authentication), by throwing.
      Throwable c = e instanceof java.util.concurrent.ExecutionException && e.getCause() != null ? e.getCause() : e;
      System.err.println("producer: " + c.getClass().getName() + ": " + c.getMessage());
      System.exit(1);
    }
  }

  private static byte[] decode(String field) {
    return field.equals("-") ? null : Base64.getDecoder().decode(field);
  }

  private static String jaasQuote(String s) {
    return s.replace("\\", "\\\\").replace("\"", "\\\"");
  }

  private static void usage(String why) {
    System.err.println("producer: " + why);
    System.err.println("usage: java -cp '<kafka home>/libs/*' Producer.java --bootstrap HOST:PORT --topic T [--partition N] "
        + "[--compression none|gzip|snappy|lz4|zstd] [--linger-ms MS] [--key K] "
        + "[--security-protocol SASL_SSL --sasl-mechanism SCRAM-SHA-256|SCRAM-SHA-512|PLAIN --username U --ca-file CA.pem] [--] [VALUE ...]");
    System.exit(2);
  }
}
