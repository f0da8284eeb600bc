#!/usr/bin/env bash
# Starts one multi-process freqnoise run on this machine: N processes on 127.0.0.1, a free port.
#
#   experiments/multihost/run_local.sh N CONFIG WORKDIR [--config.a.b=v ...]
#   e.g. LOCAL_DEVICES=2 experiments/multihost/run_local.sh 2 configs/digits_mlp.py /tmp/mh
#
# Process i runs `python -m freqnoise.main --config=CONFIG --workdir=WORKDIR
# --config.num_processes=N --config.coordinator_address=127.0.0.1:PORT --config.process_id=i`
# plus the extra flags. Process 0 prints to this terminal; process i > 0 to WORKDIR.process_i.log.
# Environment: PYTHON (default python), LOCAL_DEVICES=K gives each process K fake CPU devices
# (XLA_FLAGS, JAX_PLATFORMS=cpu; unset: JAX's own devices). INT/TERM are forwarded to every
# process. When one process fails the others are stopped (TERM, then KILL after STOP_GRACE_S,
# default 10: they would wait for it in their next collective); the exit status is the first
# failure's, 0 only when every process succeeded. A process that waited for the others longer than
# config.distributed_timeout (a collective some processes never issued) prints what each process
# was doing and exits with status 124 (freqnoise.distributed's watchdog). Rerunning the same
# command resumes every process from the latest checkpoint.
set -uo pipefail
if (( $# < 3 )) || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N CONFIG WORKDIR [--config.a.b=v ...]  (N >= 1 processes)" >&2
  exit 2
fi
n=$1 config=$2 workdir=$3
shift 3
python=${PYTHON:-python}
grace=${STOP_GRACE_S:-10}
if [[ -n ${LOCAL_DEVICES:-} ]]; then
  export XLA_FLAGS="--xla_force_host_platform_device_count=$LOCAL_DEVICES" JAX_PLATFORMS=cpu
fi
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || exit 1
mkdir -p "$(dirname "$workdir")"

pids=()
killer=""
stop_all() {  # $1: the signal to send now; whoever still runs after $grace s gets KILL (JAX's
  # distributed runtime catches TERM for its preemption notice, and a process waiting in a
  # collective for a dead peer would only notice after the 100 s heartbeat timeout)
  for pid in "${pids[@]}"; do kill "-$1" "$pid" 2>/dev/null; done
  if [[ -z $killer ]]; then
    ( sleep "$grace"; for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done ) &
    killer=$!
  fi
}
trap 'stop_all INT; trap - INT TERM' INT  # forwarded; a second one stops this script at once
trap 'stop_all TERM; trap - INT TERM' TERM

for (( i = 0; i < n; i++ )); do
  cmd=("$python" -u -m freqnoise.main "--config=$config" "--workdir=$workdir"
       "--config.num_processes=$n" "--config.coordinator_address=127.0.0.1:$port"
       "--config.process_id=$i" "$@")
  if (( i == 0 )); then
    "${cmd[@]}" &
  else
    "${cmd[@]}" > "$workdir.process_$i.log" 2>&1 &
  fi
  pids+=($!)
  echo "process $i: pid $!" >&2
done

status=0
left=$n
while (( left > 0 )); do
  wait -n -p done_pid
  rc=$?
  if [[ -z ${done_pid:-} || ${done_pid} == "$killer" ]]; then  # a forwarded signal, or the killer
    unset done_pid
    continue
  fi
  left=$((left - 1))
  if (( rc != 0 && status == 0 )); then
    status=$rc
    echo "process with pid $done_pid failed (exit status $rc); stopping the others" >&2
    stop_all TERM
  fi
  unset done_pid
done
[[ -n $killer ]] && kill "$killer" 2>/dev/null
exit "$status"
