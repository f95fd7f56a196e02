#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft: broker + controller in one
# JVM) for tests and local development. Its jars come from Maven Central via
# scripts/kafka/pom.xml, since no other download is possible here.
#
#   scripts/kafka.sh fetch            resolve the broker jars (cached)
#   scripts/kafka.sh start            fetch, configure, format once, start, wait
#   scripts/kafka.sh stop [--wipe]    stop (TERM, then KILL); --wipe drops data
#   scripts/kafka.sh status           exit 0 if running, 1 if not
#
# Environment:
#   DECIDE_KAFKA_PORT             client port (default 19092) on 127.0.0.1
#   DECIDE_KAFKA_CONTROLLER_PORT  KRaft controller port (default PORT+1)
#   DECIDE_KAFKA_HOME             cache + state (default ~/.cache/decide-kafka)
#   DECIDE_KAFKA_DATA             this broker's dir (default HOME/node-PORT)
#   DECIDE_KAFKA_VERSION          Kafka version (default: the pom's)
#   DECIDE_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   DECIDE_KAFKA_HEAP             max heap (default 512m)
#   DECIDE_KAFKA_JVM_OPTS         extra JVM flags (after ours, so they win)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka"
PORT="${DECIDE_KAFKA_PORT:-19092}"
CPORT="${DECIDE_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
KHOME="${DECIDE_KAFKA_HOME:-$HOME/.cache/decide-kafka}"
NODE="${DECIDE_KAFKA_DATA:-$KHOME/node-$PORT}"
PIDFILE="$NODE/broker.pid"
LOG="$NODE/broker.log"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

# The jar dir is keyed by the pom and the version asked for, so editing
# either re-resolves while an unchanged setup reuses the jars (and ~/.m2).
KEY="$( (cat "$HERE/pom.xml"; echo "${DECIDE_KAFKA_VERSION:-}") | sha256sum | cut -c1-12)"
LIB="$KHOME/lib-$KEY"

say() { echo "kafka: $*" >&2; }

fetch() {
  [[ -f "$LIB/.complete" ]] && return 0
  mkdir -p "$KHOME"
  rm -rf "$LIB.tmp"
  local args=(-B -f "$HERE/pom.xml" dependency:copy-dependencies
              -DincludeScope=runtime "-DoutputDirectory=$LIB.tmp")
  [[ -n "${DECIDE_KAFKA_VERSION:-}" ]] && args+=("-Dkafka.version=$DECIDE_KAFKA_VERSION")
  say "resolving broker jars with Maven (first time: a minute or more; log: $KHOME/mvn.log)"
  mvn "${args[@]}" >"$KHOME/mvn.log" 2>&1 &
  local mvn_pid=$! t=0
  # Maven in batch mode prints one "Downloaded from" line per artifact: show a count.
  while kill -0 "$mvn_pid" 2>/dev/null; do
    sleep 1; t=$((t + 1))
    (( t % 10 == 0 )) && say "  ... ${t}s, $(grep -c 'Downloaded from' "$KHOME/mvn.log" || true) files downloaded"
  done
  if ! wait "$mvn_pid"; then
    tail -n 30 "$KHOME/mvn.log" >&2
    say "maven failed (see $KHOME/mvn.log)"; return 1
  fi
  touch "$LIB.tmp/.complete"
  rm -rf "$LIB"; mv "$LIB.tmp" "$LIB"
  # Drop jar dirs of other pom/version combinations.
  find "$KHOME" -maxdepth 1 -name 'lib-*' ! -name "lib-$KEY" -exec rm -rf {} +
  local core=("$LIB"/kafka_2.13-*.jar)
  say "jars in $LIB (${core[0]##*/} and its dependencies)"
}

# The pid in the pid file, if that process is alive and is our broker (a
# stale file after a crash or reboot may name an unrelated process).
running_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $NODE/server.properties" \
    && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  mkdir -p "$NODE/data"
  cat >"$NODE/server.properties" <<EOF
# Written by scripts/kafka.sh on every start; edits here are lost.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: formatting needs no --standalone and restarts
# reuse the same storage as is.
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$NODE/data
# One broker: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests want consumer groups to start at once and topics to exist only when made.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# Keep it light on a 2-core machine (the cleaner's default buffer is 128 MiB).
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=16777216
EOF
}

start() {
  local pid
  if pid="$(running_pid)"; then
    say "already running (pid $pid)"; echo "127.0.0.1:$PORT"; return 0
  fi
  for p in "$PORT" "$CPORT"; do
    if port_open "$p"; then say "port $p is in use by another process"; return 1; fi
  done
  fetch
  write_config
  local cp="$LIB/*"
  if [[ ! -f "$NODE/data/meta.properties" ]]; then
    say "formatting storage in $NODE/data"
    local cluster_id
    cluster_id="$("$JAVA" -cp "$cp" kafka.tools.StorageTool random-uuid)"
    "$JAVA" -cp "$cp" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$NODE/server.properties" >"$NODE/format.log" 2>&1 \
      || { cat "$NODE/format.log" >&2; say "format failed"; return 1; }
  fi
  [[ -f "$LOG" ]] && mv "$LOG" "$LOG.prev"
  # Small heap and serial GC: a test broker, 2 cores. C1-only JIT roughly
  # halves startup on a busy 2-core box (peak speed matters little here;
  # DECIDE_KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=4 undoes it). setsid: not killed with
  # the caller's terminal or process group; all fds point away from the caller
  # so e.g. subprocess.run() does not wait on the broker.
  # shellcheck disable=SC2086
  setsid "$JAVA" -Xms128m -Xmx"${DECIDE_KAFKA_HEAP:-512m}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -XX:MaxDirectMemorySize=256m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" ${DECIDE_KAFKA_JVM_OPTS:-} \
    -cp "$cp" kafka.Kafka "$NODE/server.properties" </dev/null >"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "started pid $pid, waiting for it to answer on 127.0.0.1:$PORT (log: $LOG)"
  local t=0 limit="${DECIDE_KAFKA_START_TIMEOUT:-90}"
  # Ready = the server says it has started (after the broker is unfenced)
  # and the client port accepts connections.
  until grep -q 'Kafka Server started' "$LOG" 2>/dev/null && port_open "$PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG" >&2; rm -f "$PIDFILE"; say "broker exited during startup"; return 1
    fi
    if (( t >= limit )); then
      tail -n 40 "$LOG" >&2; say "not ready after ${limit}s, stopping it"; stop; return 1
    fi
    sleep 1; t=$((t + 1))
    (( t % 5 == 0 )) && say "  ... ${t}s"
  done
  say "ready after ~${t}s"
  echo "127.0.0.1:$PORT"
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    say "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    # A clean shutdown (controlled shutdown, flush, close logs) takes a few seconds.
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "still alive after 30s, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    say "stopped"
  else
    say "not running"
  fi
  rm -f "$PIDFILE"
  if [[ "${1:-}" == "--wipe" ]]; then rm -rf "$NODE"; say "wiped $NODE"; fi
}

status() {
  local pid
  if pid="$(running_pid)"; then echo "running (pid $pid) on 127.0.0.1:$PORT"
  else echo "not running"; return 1; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  status) status ;;
  *) echo "usage: $0 fetch|start|stop [--wipe]|status" >&2; exit 2 ;;
esac
