#!/usr/bin/env bash
# On the GPU machine after assemble.sh: work through a queue of count-bounded gate levels,
# the same command in every call of a session. Each queue line is
#   SERVER PLAN LABEL STREAMS REPEATS      e.g.  rag-optimized rag-optimized-rag-only opt 112 3
# (SERVER: gpu-bundle/run/SERVER.args, PLAN: gpu-bundle/run/PLAN.json; PLAN `profile` has
# profile.sh trace the steps of a -profiled server at STREAMS instead of a gate level; STREAMS
# `search` runs the gate with its capacity search, detached, watched across calls). Lines run in order;
# the server is (re)started only when a line needs other arguments than the running one's,
# and only if the start and one level fit before DEADLINE. A level done in an earlier call
# (its report under /tmp/res) is not run again, so the next call goes on where this one
# stopped; levels are named as repeat.sh names them (LABEL-cSTREAMS-rN). Everything small
# enough to come back: $OUT/session.tgz.
#   DEADLINE=$(( $(date +%s) + 560 )) LEVEL_S=290 \
#     bash benchmarks/gpu/h200/session.sh benchmarks/gpu/h200/queue.txt
set -uo pipefail
queue=${1:?queue file}
[ -f "$queue" ] || { echo "no queue file $queue"; exit 2; }
here=$(dirname "$0")
run_dir=${RUN_DIR:-gpu-bundle/run}
server_s=${SERVER_S:-180}  # a server start, measured 80-185 s on the H200
state=${SERVER_STATE:-/tmp/server.args}
server_up() { ${HEALTH_CMD:-curl -sf 127.0.0.1:8000/health} >/dev/null 2>&1; }
source "$here/levels.sh"

# The queue is read on its own descriptor: the server and the gate never see it as stdin.
while read -r -u 3 server plan label streams repeats _; do
  case $server in ''|'#'*) continue ;; esac
  PLAN=$run_dir/$plan.json
  for r in $(seq 1 "${repeats:?repeats on every queue line}"); do
    name=$label-c$streams-r$r
    # STREAMS `search`: the gate's own capacity search, detached across calls (run_search).
    [ "$streams" = search ] && name=$label-search-r$r
    [ -f "$res/$name/gate.json" ] || [ -f "$res/$name/load.txt" ] && continue
    if [ "$streams" = search ] && [ -f "$res/$name.pid" ]; then
      run_search "$name" session || exit 0  # started in an earlier call: watch it, start nothing
      continue
    fi
    if ! cmp -s "$run_dir/$server.args" "$state" || ! server_up; then
      # A search needs only its start to fit (it runs on across calls).
      need=$level_s; [ "$streams" = search ] && need=0
      if [ $(( $(date +%s) + server_s + need )) -gt "$deadline" ]; then
        echo "$server: a start and a level do not fit this call"; exit 0
      fi
      bash "$here/serve.sh" "$run_dir/$server.args" < /dev/null || { echo "$server did not start"; exit 1; }
    fi
    if [ "$plan" = profile ]; then
      run_profile "$name" "$streams" session || exit 0
    elif [ "$streams" = search ]; then
      run_search "$name" session || exit 0
    else
      run_level "$name" "$streams" session || exit 0
    fi
  done
done 3< "$queue"
echo "queue done"
