#!/usr/bin/env bash
# Compatibility check with kafkajs (Node.js): start `sluice serve` on a
# random loopback port, install the pinned kafkajs (compat/kafkajs,
# package-lock.json) with `npm ci`, and run compat/kafkajs/compat.js:
# metadata, admin, keyed produce with every codec, consume from the
# beginning, group consume with commits, idempotent produce and a
# transaction (the last two are skipped while the broker does not
# advertise their APIs). Exits non-zero if any scenario fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "kafkajs-test: installing nodejs and npm"
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >/dev/null
	else
		echo "kafkajs-test: node and npm are required (Debian: apt-get install nodejs npm)" >&2
		exit 1
	fi
fi

work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd compat/kafkajs && npm ci --no-audit --no-fund --loglevel=error)

go build -o "$work/sluice" ./cmd/sluice
"$work/sluice" serve --listen 127.0.0.1:0 --admin-listen off --data-dir "$work/data" \
	--set group.initial.rebalance.delay.ms=0 2>"$work/serve.log" &
pid=$!
addr=""
for _ in $(seq 1 200); do
	addr=$(sed -n 's/.*msg=ready kafka=\([^ ]*\).*/\1/p' "$work/serve.log" | head -1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
	sleep 0.05
done
[ -n "$addr" ] || { echo "kafkajs-test: broker did not start" >&2; cat "$work/serve.log" >&2; exit 1; }

# The API keys the broker advertises, so scenarios needing APIs it does not
# have yet are skipped (and run once it has them).
apis=$("$work/sluice" cluster info --apis --format json -X "brokers=$addr" |
	node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).brokers[0].apis.map(a=>a.key).join(",")))')
echo "kafkajs-test: broker at $addr, node $(node --version), kafkajs $(node -p 'require("./compat/kafkajs/node_modules/kafkajs/package.json").version')"

status=0
(cd compat/kafkajs && SLUICE_BROKER="$addr" SLUICE_APIS="$apis" KAFKAJS_NO_PARTITIONER_WARNING=1 node compat.js) || status=$?
if [ "$status" != 0 ]; then
	echo "kafkajs-test: FAIL (broker log follows)" >&2
	tail -50 "$work/serve.log" >&2
	exit 1
fi

kill -TERM "$pid"
wait "$pid" || { echo "kafkajs-test: broker exited with $?" >&2; exit 1; }
pid=""
grep -q "broker stopped" "$work/serve.log" || { echo "kafkajs-test: no clean shutdown" >&2; exit 1; }
