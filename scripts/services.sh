#!/usr/bin/env bash
# Makes sure the services the tests use are up: PostgreSQL (127.0.0.1:5432, trust auth,
# database `test`), MariaDB (127.0.0.1:3306, root without password, database `test`) and
# Redis (127.0.0.1:6379). Starts them when installed but stopped; installs them from
# Debian's packages when missing. Under CI=true a service that cannot be brought up fails.
set -uo pipefail

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
failures=()

up() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_up() { # name host port
  for _ in $(seq 1 60); do up "$2" "$3" && return 0; sleep 0.5; done
  return 1
}

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq >/dev/null 2>&1; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null 2>&1
}

postgres() {
  if ! up 127.0.0.1 5432; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    if [ -n "$ver" ]; then
      conf=/etc/postgresql/$ver/main/pg_hba.conf
      # Trust local TCP connections (a test machine's database, loopback only).
      if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf" 2>/dev/null; then
        $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf"
      fi
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
    fi
    wait_up postgres 127.0.0.1 5432 || { failures+=(postgresql); return; }
  fi
  if command -v psql >/dev/null; then
    psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1 \
      || psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null 2>&1 || true
  fi
}

mariadb_() {
  if ! up 127.0.0.1 3306; then
    command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
    $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
    wait_up mariadb 127.0.0.1 3306 || { failures+=(mariadb); return; }
  fi
  if command -v mariadb >/dev/null; then
    mariadb -h 127.0.0.1 -uroot -e "create database if not exists test" >/dev/null 2>&1 \
      || $SUDO mariadb -uroot -e "create database if not exists test; alter user 'root'@'localhost' identified via mysql_native_password using password(''); flush privileges;" >/dev/null 2>&1 || true
  fi
}

redis_() {
  if ! up 127.0.0.1 6379; then
    command -v redis-server >/dev/null || apt_install redis-server
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
    wait_up redis 127.0.0.1 6379 || failures+=(redis)
  fi
}

postgres
mariadb_
redis_

if [ ${#failures[@]} -gt 0 ]; then
  echo "services.sh: could not bring up: ${failures[*]}" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "services.sh: continuing outside CI; tests that need them will fail" >&2
else
  echo "services.sh: postgresql :5432, mariadb :3306, redis :6379 are up"
fi
