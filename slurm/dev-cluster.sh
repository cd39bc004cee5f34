#!/usr/bin/env bash
# dev-cluster.sh — a real single-node SLURM on localhost for tests, CI and trying the SLURM path on a laptop.
#
#   slurm/dev-cluster.sh start    install missing Debian packages, write configs, start munged, MariaDB,
#                                 slurmdbd, slurmctld and slurmd; wait until the node is idle. Idempotent.
#   slurm/dev-cluster.sh stop     cancel this cluster's jobs, stop only the daemons this script started
#                                 (pid files under the state dir, process name checked)
#   slurm/dev-cluster.sh status   daemons and sinfo; exit 0 only when the cluster is up
#   slurm/dev-cluster.sh env      the line clients need:  eval "$(slurm/dev-cluster.sh env)"
#   slurm/dev-cluster.sh purge    stop, then delete the state directory
#
# All state (configs, munge key and socket, database, spool, logs, pid files) lives in $HB_SLURM_DIR
# (default /tmp/harmonybench-slurm). Clients (sbatch, sacct, submitit) need SLURM_CONF=$HB_SLURM_DIR/etc/slurm.conf.
# Needs root (it runs the daemons as root) and Debian/Ubuntu's slurm-wlm packages (Slurm 22.05 on Debian 12).
# Accounting (slurmdbd + MariaDB) is not optional: submitit polls job state with sacct.
#
# Knobs: HB_SLURM_DIR, HB_SLURM_CPUS (default: max(nproc, 4); may exceed the real cores),
#        HB_SLURM_PORT_BASE (default 6817: slurmctld, +1 slurmd, +2 slurmdbd; MariaDB on 3307),
#        HB_SLURM_TIMEOUT (seconds to wait for each daemon, default 60).
set -euo pipefail

STATE=${HB_SLURM_DIR:-/tmp/harmonybench-slurm}
NPROC=$(nproc)
CPUS=${HB_SLURM_CPUS:-$(( NPROC > 4 ? NPROC : 4 ))}
PORT=${HB_SLURM_PORT_BASE:-6817}
DB_PORT=${HB_SLURM_DB_PORT:-3307}
WAIT_S=${HB_SLURM_TIMEOUT:-60}
CLUSTER=harmonybench
PARTITION=dev
HOST=$(hostname -s)          # slurmctld only runs where SlurmctldHost equals the short hostname
DB_USER=slurm DB_PASSWORD=harmonybench-dev

CONF=$STATE/etc/slurm.conf
PIDS=$STATE/pids LOGS=$STATE/logs
MUNGE_SOCKET=$STATE/munge/socket
DB_SOCKET=$STATE/mariadb/mysqld.sock
export SLURM_CONF=$CONF

say() { printf '[dev-cluster] %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }

# ---- our daemons only: a pid counts as ours when it is in our pid file and has the expected name ----
our_pid() {  # <name>  -> prints the pid of our running <name>, or fails
  local file=$PIDS/$1.pid pid
  [[ -s $file ]] || return 1
  pid=$(tr -cd '0-9' 2>/dev/null <"$file") || return 1
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
  echo "$pid"
}
is_running() { our_pid "$1" >/dev/null; }
stop_one() {  # <name>: SIGTERM, wait up to 20 s, then SIGKILL
  local pid n
  if ! pid=$(our_pid "$1"); then rm -f "$PIDS/$1.pid"; return 0; fi
  say "stopping $1 ($pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for n in $(seq 100); do is_running "$1" || break; sleep 0.2; done
  if is_running "$1"; then say "$1 ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDS/$1.pid"
}
until_ok() {  # <what> <command...>: poll every 0.2 s for up to $WAIT_S seconds
  local what=$1 n; shift
  for n in $(seq $(( WAIT_S * 5 ))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "$what did not come up within ${WAIT_S}s; see $LOGS/"
}

install_missing() {
  local want=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server) missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
  done
  (( ${#missing[@]} )) || return 0
  [[ $(id -u) == 0 ]] || fail "missing packages ${missing[*]}; install them as root"
  say "installing ${missing[*]}"
  # Keep the package scripts from starting the distribution's own daemons; leave an existing policy alone.
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || { (( own_policy )) && rm -f /usr/sbin/policy-rc.d; fail "apt-get install failed; see $STATE/apt.log"; }
  if (( own_policy )); then rm -f /usr/sbin/policy-rc.d; fi
}

write_slurm_conf() {
  local mem_mb over=""
  mem_mb=$(awk '/^MemTotal:/ {m = int($2 / 1024) - 1024; print (m > 1024 ? m : 1024)}' /proc/meminfo)
  (( CPUS > NPROC )) && over="SlurmdParameters=config_overrides   # more CPUs than cores: jobs share them"
  cat >"$CONF.tmp" <<EOF
# written by slurm/dev-cluster.sh — single node, everything under $STATE
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$(( PORT + 1 ))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# our own munged socket; a short credential lifetime lets a requeued job start again in seconds, not ~2.5 min
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
InactiveLimit=0
KillWait=10
MinJobAge=300
SchedulerType=sched/backfill
# start array tasks and requeued jobs within about a second
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job gets the whole node's memory and array tasks run one at a time
DefMemPerCPU=1000
JobRequeue=1
$over
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$(( PORT + 2 ))
# slurmdbd traffic finds the munge socket here, not in AuthInfo
AccountingStoragePass=$MUNGE_SOCKET
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  mv -f "$CONF.tmp" "$CONF"
  (umask 077 && cat >"$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$(( PORT + 2 ))
SlurmUser=root
PidFile=$PIDS/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
  )
  chmod 600 "$STATE/etc/slurmdbd.conf"   # slurmdbd refuses a readable config
}

munge_ok() { munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"; }
db_ok() { mariadb --no-defaults -S "$DB_SOCKET" -u root -e 'select 1'; }
dbd_ok() { sacctmgr -n list cluster; }
ctld_ok() { scontrol ping | grep -q 'is UP'; }
node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null; }
user_ok() { sacctmgr -n -P list assoc cluster="$CLUSTER" user=root format=user | grep -qx root; }

start_munge() {
  is_running munged && return 0
  [[ -s $STATE/munge/key ]] || mungekey -c -b 1024 -k "$STATE/munge/key"
  chmod 600 "$STATE/munge/key"
  munged --socket="$MUNGE_SOCKET" --key-file="$STATE/munge/key" --pid-file="$PIDS/munged.pid" \
    --log-file="$LOGS/munged.log" --seed-file="$STATE/munge/seed"
}

start_database() {
  if ! is_running mariadbd; then
    if [[ ! -d $STATE/mariadb/data/mysql ]]; then
      mariadb-install-db --no-defaults --user=root --datadir="$STATE/mariadb/data" --skip-test-db \
        --auth-root-authentication-method=socket >"$LOGS/mariadb-install.log" 2>&1
    fi
    # mariadbd does not daemonize: detach it from this shell (and from the caller's session)
    setsid mariadbd --no-defaults --user=root --datadir="$STATE/mariadb/data" --socket="$DB_SOCKET" \
      --pid-file="$PIDS/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
      --log-error="$LOGS/mariadbd.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
  fi
  until_ok MariaDB db_ok
  mariadb --no-defaults -S "$DB_SOCKET" -u root -e \
    "CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
     GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'127.0.0.1';"
}

start() {
  mkdir -p "$STATE"/{etc,pids,logs,munge,mariadb,slurmctld,slurmd}
  chmod 755 "$STATE" "$STATE/munge"   # munged insists that its socket directory is world-searchable
  install_missing
  if is_running slurmctld; then say "slurmctld already running; keeping its config"; else write_slurm_conf; fi
  start_munge; until_ok munged munge_ok
  start_database
  is_running slurmdbd || slurmdbd   # reads slurmdbd.conf beside $SLURM_CONF
  until_ok slurmdbd dbd_ok
  is_running slurmctld || slurmctld
  until_ok slurmctld ctld_ok
  is_running slurmd || slurmd -N "$HOST"
  # the node's state survives restarts in the state dir: resume it when an earlier run left it down
  local n st=""
  for n in $(seq $(( WAIT_S * 5 ))); do
    st=$(node_state || true)
    [[ $st == idle || $st == mixed || $st == allocated ]] && break
    if [[ $st == down* || $st == drain* ]]; then scontrol update nodename="$HOST" state=resume 2>/dev/null || true; fi
    sleep 0.2
  done
  [[ $st == idle || $st == mixed || $st == allocated ]] || fail "node $HOST is '${st:-unknown}', not idle"
  until_ok "accounting for root" user_ok   # slurmctld registers the cluster and root's association itself
  say "up: cluster $CLUSTER, partition $PARTITION, $CPUS CPUs. Clients need: export SLURM_CONF=$CONF"
}

stop() {
  if is_running slurmctld; then
    local jobs n
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
      say "cancelling jobs $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for n in $(seq 150); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.2; done
    fi
  fi
  local d
  for d in slurmd slurmctld slurmdbd mariadbd munged; do stop_one "$d"; done
  say "stopped"
}

status() {
  local d up=0
  for d in munged mariadbd slurmdbd slurmctld slurmd; do
    if pid=$(our_pid "$d"); then echo "$d: running ($pid)"; else echo "$d: stopped"; up=1; fi
  done
  if (( up == 0 )); then sinfo; echo "export SLURM_CONF=$CONF"; fi
  return $up
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  purge) stop; rm -rf "$STATE"; say "removed $STATE" ;;
  *) echo "usage: $0 start|stop|status|env|purge" >&2; exit 2 ;;
esac
