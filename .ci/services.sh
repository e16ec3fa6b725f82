# Sourced by .ci/run: PostgreSQL and Redis on loopback, in a temporary folder, for the scale-out tests.
# Installs Debian's packages when missing; exports FERRET_TEST_POSTGRES and FERRET_TEST_REDIS for the
# tests; stop_services tears both down. When they cannot be had, the tests say why and skip.

services_dir=""

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_services() {
  local pg_bin
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if ! command -v redis-server >/dev/null 2>&1 || [ -z "$pg_bin" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "ci: installing redis-server and postgresql"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server postgresql; } >/dev/null \
        || echo "ci: could not install redis-server and postgresql; the scale-out tests will skip" >&2
      pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
  fi
  services_dir=$(mktemp -d /tmp/ferret-ci-services.XXXXXX)
  chmod 0777 "$services_dir"
  if [ -n "$pg_bin" ]; then
    local pg_port
    pg_port=$(free_port)
    if as_postgres "$pg_bin/initdb" -D "$services_dir/pg" -U ferret --auth=trust -E UTF8 --no-sync --no-instructions >"$services_dir/initdb.log" 2>&1 \
      && as_postgres "$pg_bin/pg_ctl" -D "$services_dir/pg" -l "$services_dir/postgres.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $pg_port -k $services_dir -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null; then
      export FERRET_TEST_POSTGRES="Host=127.0.0.1;Port=$pg_port;Username=ferret;Database=postgres"
      echo "ci: PostgreSQL on 127.0.0.1:$pg_port"
    else
      echo "ci: PostgreSQL did not start: $(tail -n 3 "$services_dir"/*.log 2>/dev/null)" >&2
    fi
  fi
  if command -v redis-server >/dev/null 2>&1; then
    local redis_port i
    redis_port=$(free_port)
    if redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
      --dir "$services_dir" --pidfile "$services_dir/redis.pid" --logfile "$services_dir/redis.log"; then
      for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
        sleep 0.1
      done
      export FERRET_TEST_REDIS="127.0.0.1:$redis_port"
      echo "ci: Redis on 127.0.0.1:$redis_port"
    else
      echo "ci: Redis did not start" >&2
    fi
  fi
}

stop_services() {
  [ -n "$services_dir" ] || return 0
  if [ -f "$services_dir/pg/postmaster.pid" ]; then
    local pg_bin
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    as_postgres "$pg_bin/pg_ctl" -D "$services_dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$services_dir/redis.pid" ]; then
    kill "$(cat "$services_dir/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$services_dir"
  services_dir=""
}
