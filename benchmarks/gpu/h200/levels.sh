#!/usr/bin/env bash
# Sourced by repeat.sh and bracket.sh on the GPU machine (serve.sh's server up): one
# count-bounded gate level at a time (no --seconds: four waves measured after a warm-up of ⅛ of
# the level's requests), resumable across calls — /tmp/res survives while the machine is held,
# and a level whose report is there is not run again.
# Needs: PLAN (plan json). DEADLINE (epoch seconds, default now + 540): a level starts only if
# LEVEL_S (default 270) more seconds fit before it.
res=${RES:-/tmp/res}  # RES: for tests
deadline=${DEADLINE:-$(( $(date +%s) + 540 ))}
level_s=${LEVEL_S:-270}
mkdir -p "$res"

# met | missed | unknown (refused, or no report) for one level's gate.json
verdict() {
  python3 - "$1" <<'PY'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except OSError:
    print("unknown"); sys.exit()
checks = {c["name"]: c["passed"] for c in report.get("checks", [])}
latency = [checks.get(n) for n in ("ttft_p95_ms", "itl_p95_ms", "error_rate")]
if report.get("refusals") or None in latency:
    print("unknown")
else:
    print("met" if all(latency) else "missed")
PY
}

# archive_results ARCHIVE: what is under $res, as $OUT/ARCHIVE.tgz. Raw GuideLLM reports run to
# tens of MB: the gate's own trimmed copies and reports come back.
archive_results() {
  (cd "$res" && find . -type f -size -2M | tar czf "${OUT:-/tmp/out}/$1.tgz" -T -)
}

# run_level NAME STREAMS ARCHIVE: returns 1 (and runs nothing) when the level does not fit.
run_level() {
  local name=$1 streams=$2 archive=$3
  if [ -f "$res/$name/gate.json" ]; then
    echo "$name: done before ($(verdict "$res/$name/gate.json"))"; return 0
  fi
  if [ $(( $(date +%s) + level_s )) -gt "$deadline" ]; then
    echo "$name: does not fit this call"; return 1
  fi
  OUT=$res bash "$(dirname "${BASH_SOURCE[0]}")/gate.sh" "$PLAN" "$name" \
    --skip-capacity-search --concurrency "$streams" > "$res/$name.log" 2>&1
  tail -2 "$res/$name.log"
  echo "$name: $(verdict "$res/$name/gate.json")"
  archive_results "$archive"
}

# run_profile NAME STREAMS ARCHIVE: profile.sh at STREAMS (the server serves a -profiled args
# file); done once its load.txt is under $res, whatever the summary's fate (it says why).
run_profile() {
  local name=$1 streams=$2 archive=$3
  if [ -f "$res/$name/load.txt" ]; then
    echo "$name: profiled before"; return 0
  fi
  if [ $(( $(date +%s) + level_s )) -gt "$deadline" ]; then
    echo "$name: does not fit this call"; return 1
  fi
  OUT=$res bash "$(dirname "${BASH_SOURCE[0]}")/profile.sh" "$name" "$streams" \
    > "$res/$name.log" 2>&1
  echo "$name: profile exit $?"; tail -4 "$res/$name.log"
  archive_results "$archive"
}
# snapshot_metrics DIR: vLLM's /metrics now, as DIR/metrics-after.txt marked partial: a search
# whose machine goes back during a later call keeps a reading of its probes so far (gate.sh
# writes the final one and drops the mark when the gate ends).
snapshot_metrics() {
  ${METRICS_CMD:-curl -sf 127.0.0.1:8000/metrics} > "$1/metrics-after.txt" 2>/dev/null \
    && echo "read $(date -u +%FT%TZ) at a call's deadline while the search ran, not at its end" \
      > "$1/metrics-after.partial"
}

# run_search NAME ARCHIVE: the product's gate as it runs in a cluster — the planned level, then
# its capacity search (no --skip-capacity-search) — started detached (setsid: it outlives this
# call while the machine is held), then watched until its report is back or the call's
# deadline nears. Returns 1 while it runs (the queue waits for it: the same command in the
# next call watches on), 0 once it has ended; a search that ended without a report is not
# started again (its log says why).
run_search() {
  local name=$1 archive=$2 pidfile="$res/$1.pid" poll=${POLL_S:-10}
  if [ -f "$res/$name/gate.json" ]; then
    echo "$name: searched before ($(verdict "$res/$name/gate.json"))"; return 0
  fi
  if [ ! -f "$pidfile" ]; then
    OUT=$res setsid bash "$(dirname "${BASH_SOURCE[0]}")/gate.sh" "$PLAN" "$name" \
      > "$res/$name.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    echo "$name: search started"
  fi
  while kill -0 "$(cat "$pidfile")" 2>/dev/null; do
    if [ $(( $(date +%s) + poll )) -gt "$deadline" ]; then
      local probes
      probes=$(find "$res/$name" -name 'guidellm-*-capacity-c*' 2>/dev/null | grep -c .)
      echo "$name: still searching at the deadline ($probes probe reports back)"
      snapshot_metrics "$res/$name"
      archive_results "$archive"
      return 1
    fi
    sleep "$poll"
  done
  tail -2 "$res/$name.log"
  if [ -f "$res/$name/gate.json" ]; then
    echo "$name: $(verdict "$res/$name/gate.json")"
  else
    echo "$name: the search ended without a report ($res/$name.log)"
  fi
  archive_results "$archive"
}
