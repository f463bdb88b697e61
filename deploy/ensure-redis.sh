#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_URL's host and port (default 127.0.0.1:6379): if none does, start a local
# redis-server (installing Debian's package first when it is missing). Used by `make chat` and by CI.
set -euo pipefail

# REDIS_URL and MEMBOT_DATA_DIR come from the environment, else from ./.env (as membot itself reads them).
from_dotenv() {
  [ -f .env ] || return 0
  sed -n "s/^[[:space:]]*\(export[[:space:]]\+\)\?$1[[:space:]]*=[[:space:]]*//p" .env | tail -n 1 \
    | sed -e 's/[[:space:]]\+#.*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}
REDIS_URL="${REDIS_URL:-$(from_dotenv REDIS_URL)}"
MEMBOT_DATA_DIR="${MEMBOT_DATA_DIR:-$(from_dotenv MEMBOT_DATA_DIR)}"

url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
hostport="${url#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=6379

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG
  else
    (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
  fi
}

if ping; then
  echo "redis: answering at $host:$port"
  exit 0
fi
case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "redis: nothing answers at $host:$port, and it is not local, so membot will not start one." >&2; exit 1 ;;
esac
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: installing redis-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# membot's data directory: MEMBOT_DATA_DIR, else the per-user one (bot/ops/data_dir.py; ~/.local/share/membot on Linux)
default_dir="$(.venv/bin/python -c 'from bot.ops.data_dir import default_data_dir; print(default_data_dir())' 2>/dev/null \
  || echo "${XDG_DATA_HOME:-$HOME/.local/share}/membot")"
dir="${MEMBOT_DATA_DIR:-$default_dir}/redis"
if [ -z "${MEMBOT_DATA_DIR:-}" ] && [ ! -d "$dir" ] && [ -d ./data/redis ]; then  # the old default, ./data
  dir="./data/redis"
  echo "redis: using $(pwd)/data/redis, the old default; move it with: mkdir -p $default_dir && mv ./data/redis $default_dir/"
fi
mkdir -p "$dir"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$(cd "$dir" && pwd)" \
  --appendonly yes --logfile "$(cd "$dir" && pwd)/redis.log"
for _ in $(seq 1 50); do
  if ping; then echo "redis: started on 127.0.0.1:$port (data in $dir)"; exit 0; fi
  sleep 0.1
done
echo "redis: redis-server did not answer on port $port; see $dir/redis.log" >&2
exit 1
