#!/bin/sh
# A Redis Cluster on loopback with linattn_redis.so loaded in every node: 3 primaries and 3
# replicas (redis-cli --cluster create ... --cluster-replicas 1), each node in DIR/PORT/.
#   redis-cluster.sh start DIR MODULE PORT1 ... PORT6   start the nodes, form the cluster, wait until ok
#   redis-cluster.sh stop DIR                           stop every node started in DIR
# DIR/ports lists the ports, DIR/PORT/pid each node's process id.
# The nodes fail over after 1 s without their primary (cluster-node-timeout 1000; a replica
# always may, cluster-replica-validity-factor 0), write an AOF
# (appendonly yes) and never listen beyond 127.0.0.1.
set -eu
cmd=$1; dir=$2; shift 2
case "$cmd" in
start)
  module=$1; shift
  [ $# -eq 6 ] || { echo "redis-cluster.sh: give six ports" >&2; exit 2; }
  mkdir -p "$dir"
  : > "$dir/ports"
  for port in "$@"; do
    mkdir -p "$dir/$port"
    rm -f "$dir/$port/nodes.conf"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --daemonize yes \
      --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" --loadmodule "$module" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
      --cluster-replica-validity-factor 0 \
      --appendonly yes --save ""
    echo "$port" >> "$dir/ports"
  done
  for port in "$@"; do  # every node answers before the cluster is formed
    i=0; until redis-cli -p "$port" ping >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
    cp "$dir/$port/redis.pid" "$dir/$port/pid"  # Redis removes its pidfile when it exits
  done
  nodes=""; for port in "$@"; do nodes="$nodes 127.0.0.1:$port"; done
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || { cat "$dir/create.log" >&2; exit 1; }
  i=0
  until [ "$(redis-cli -p "$1" cluster info | tr -d '\r' | sed -n 's/^cluster_state://p')" = ok ]; do
    i=$((i + 1)); [ $i -lt 400 ] || { echo "redis-cluster.sh: the cluster is not ok after 20 s" >&2; exit 1; }
    sleep 0.05
  done
  for port in "$@"; do  # and every replica in sync with its primary (writes then reach it)
    i=0
    while redis-cli -p "$port" info replication | tr -d '\r' | grep -q '^role:slave' &&
          ! redis-cli -p "$port" info replication | tr -d '\r' | grep -q '^master_link_status:up'; do
      i=$((i + 1)); [ $i -lt 400 ] || { echo "redis-cluster.sh: replica $port not in sync after 20 s" >&2; exit 1; }
      sleep 0.05
    done
  done
  ;;
stop)
  [ -f "$dir/ports" ] || exit 0
  for port in $(cat "$dir/ports"); do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  for port in $(cat "$dir/ports"); do  # up to 5 s each to exit, then SIGKILL
    pid=$(cat "$dir/$port/pid" 2>/dev/null || true)
    i=0; while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$dir/ports"
  ;;
*) echo "usage: redis-cluster.sh start DIR MODULE PORT1..PORT6 | stop DIR" >&2; exit 2 ;;
esac
