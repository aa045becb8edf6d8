#!/usr/bin/env bash
# Fetches the Apache Kafka broker jars (and a log4j2 backend) from Maven Central into $2/libs.
#   usage: fetch-kafka.sh <kafka version, e.g. 4.1.1> <out dir>
set -euo pipefail
KV=$1 OUT=$2
command -v mvn >/dev/null || { echo "testbed: Maven is required to fetch the Kafka broker jars (apt-get install maven), or set KAFKA_HOME to an unpacked Apache Kafka" >&2; exit 2; }
command -v java >/dev/null || { echo "testbed: a Java 17+ runtime is required to run the Kafka broker (apt-get install openjdk-17-jre-headless)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/kafka-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
case "$KV" in
  3.*) LOG='<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>' ;;
  *) LOG='<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency><dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency><dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>' ;;
esac
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>testbed</groupId><artifactId>kafka-fetch</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KV</version></dependency>
    $LOG
  </dependencies>
</project>
POM
mkdir -p "$OUT"
rm -rf "$OUT/libs.tmp"
mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$OUT/libs.tmp"
rm -rf "$OUT/libs" && mv "$OUT/libs.tmp" "$OUT/libs"
echo "testbed: Kafka $KV jars ready in $OUT/libs" >&2
