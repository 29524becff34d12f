#!/usr/bin/env bash
# Installs a real Apache Kafka broker for the fault tests: the kafka_2.13
# jar and its runtime dependencies, resolved by Maven from Maven Central,
# into "$AUDITPIPE_CACHE/kafka/<version>/lib" (about 43 MB). The tests run
# it in KRaft mode with the machine's Java 17 (internal/kafka/kafkatest).
# With it, the SLF4J binding to the log4j 2 it already depends on (as the
# Apache distribution ships it): without one, the broker says nothing, not
# even why it exited at start.
# Idempotent: does nothing when that set is already there.
set -euo pipefail
: "${AUDITPIPE_CACHE:=$HOME/.cache/auditpipe}"
version="4.4.0"
log4j="2.25.5" # kafka_2.13 4.4.0's log4j-core
dest="$AUDITPIPE_CACHE/kafka/$version"
ready="$version log4j-slf4j-impl $log4j"

if [ "$(cat "$dest/READY" 2>/dev/null)" = "$ready" ]; then
	exit 0
fi
for tool in mvn java; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "deps: kafka: $tool not found; install Java 17 and Maven to fetch Apache Kafka $version" >&2
		exit 1
	fi
done

echo "deps: kafka: fetching org.apache.kafka:kafka_2.13:$version and its dependencies from Maven Central" >&2
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>auditpipe</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$log4j</version>
    </dependency>
  </dependencies>
</project>
POM
if ! mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/lib" -DincludeScope=runtime >"$tmp/mvn.log" 2>&1; then
	cat "$tmp/mvn.log" >&2
	echo "deps: kafka: Maven could not resolve kafka_2.13:$version and log4j-slf4j-impl:$log4j" >&2
	exit 1
fi
if [ ! -f "$tmp/lib/kafka_2.13-$version.jar" ]; then
	echo "deps: kafka: kafka_2.13-$version.jar missing after resolution" >&2
	exit 1
fi
if [ ! -f "$tmp/lib/log4j-slf4j-impl-$log4j.jar" ]; then
	echo "deps: kafka: log4j-slf4j-impl-$log4j.jar missing after resolution" >&2
	exit 1
fi
rm -rf "$dest/lib"
mv "$tmp/lib" "$dest/lib"
echo "$ready" >"$dest/READY"
echo "deps: kafka: installed $dest/lib" >&2
