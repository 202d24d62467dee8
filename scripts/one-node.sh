# Sourced by the bench and suite scripts: `start_one_node BIN DIR` starts a one-node AiSQL
# (`aisql start`, RF=1, data and log under DIR) in the background, every port a free one on
# 127.0.0.1. It sets ONE_NODE_PID, the API ports PG_PORT, CQL_PORT and REDIS_PORT, and the
# web ports (each serves /prometheus-metrics) MS_WEB_PORT, DB_WEB_PORT, PG_WEB_PORT,
# CQL_WEB_PORT and REDIS_WEB_PORT; the caller stops the process (by that PID) when done.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_one_node() {
  PG_PORT=$(free_port); CQL_PORT=$(free_port); REDIS_PORT=$(free_port)
  MS_WEB_PORT=$(free_port); DB_WEB_PORT=$(free_port)
  PG_WEB_PORT=$(free_port); CQL_WEB_PORT=$(free_port); REDIS_WEB_PORT=$(free_port)
  "$1" start --base_dir "$2/aisql" --bind_ip 127.0.0.1 \
    --mserver_rpc_port "$(free_port)" --mserver_webserver_port "$MS_WEB_PORT" \
    --dbserver_rpc_port "$(free_port)" --dbserver_webserver_port "$DB_WEB_PORT" \
    --pgsql_proxy_bind_address "127.0.0.1:$PG_PORT" --cql_proxy_bind_address "127.0.0.1:$CQL_PORT" \
    --redis_proxy_bind_address "127.0.0.1:$REDIS_PORT" --pgsql_proxy_webserver_port "$PG_WEB_PORT" \
    --cql_proxy_webserver_port "$CQL_WEB_PORT" --redis_proxy_webserver_port "$REDIS_WEB_PORT" >"$2/aisql.log" 2>&1 &
  ONE_NODE_PID=$!
}
# `wait_redis_ready PORT`: wait (up to 60 s) until BEDIS on PORT accepts a write. A reply
# is not enough: until the dbserver has registered, a SET answers "-ERR not enough live
# dbservers" (and redis-cli still exits 0).
wait_redis_ready() {
  for _ in $(seq 300); do
    [ "$(redis-cli -p "$1" set warmup 1 2>/dev/null)" = "OK" ] && return 0
    sleep 0.2
  done
  echo "BEDIS on port $1 did not accept a write within 60 s" >&2
  return 1
}
