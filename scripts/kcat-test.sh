#!/usr/bin/env bash
# Compatibility check with kcat (librdkafka): start `sluice serve` on a
# random loopback port, list metadata, produce keyed lines, consume them
# back and compare exactly. Exits non-zero on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "kcat-test: installing kcat"
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) >/dev/null
	else
		echo "kcat-test: kcat is not installed (Debian: apt-get install kcat)" >&2
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

go build -o "$work/sluice" ./cmd/sluice
"$work/sluice" serve --listen 127.0.0.1:0 --admin-listen off --data-dir "$work/data" 2>"$work/serve.log" &
pid=$!
addr=""
for _ in $(seq 1 200); do
	addr=$(sed -n 's/.*msg=ready kafka=\([^ ]*\).*/\1/p' "$work/serve.log" | head -1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
	sleep 0.05
done
[ -n "$addr" ] || { echo "kcat-test: broker did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
echo "kcat-test: broker at $addr ($(kcat -V 2>&1 | head -1))"

fail() { echo "kcat-test: FAIL: $*" >&2; cat "$work/serve.log" >&2; exit 1; }

# 1. Metadata.
kcat -b "$addr" -L -m 10 >"$work/meta.txt" 2>&1 || fail "kcat -L: $(cat "$work/meta.txt")"
grep -q "1 brokers:" "$work/meta.txt" || fail "metadata lists no broker: $(cat "$work/meta.txt")"
grep -q "broker 1 at $addr" "$work/meta.txt" || fail "metadata does not advertise $addr: $(cat "$work/meta.txt")"

# 2. Produce keyed lines (the topic is auto-created) with every codec.
: >"$work/expected.txt"
for codec in none gzip snappy lz4 zstd; do
	for i in $(seq 1 50); do echo "key$((i % 7)):$codec value $i"; done >"$work/in-$codec.txt"
	kcat -b "$addr" -t kcat-test -P -K: -z "$codec" -X linger.ms=5 -m 10 <"$work/in-$codec.txt" \
		|| fail "produce with $codec"
	sed 's/:/=/' "$work/in-$codec.txt" >>"$work/expected.txt"
done

# 3. Consume from the beginning to the end, keys and values exact.
kcat -b "$addr" -t kcat-test -C -o beginning -e -q -f '%k=%s\n' -m 10 >"$work/got.txt" \
	|| fail "consume"
diff -u "$work/expected.txt" "$work/got.txt" || fail "consumed records differ from produced"

# 4. Offsets: the end offset equals the number of records produced.
want=$(wc -l <"$work/expected.txt")
kcat -b "$addr" -Q -t kcat-test:0:-1 -m 10 >"$work/offs.txt" 2>&1 || fail "offset query: $(cat "$work/offs.txt")"
grep -q "offset $want" "$work/offs.txt" || fail "end offset: $(cat "$work/offs.txt"), want $want"

# 5. Group consumption (-G): the group reads everything and commits; a second
#    run of the same group finds nothing new.
kcat -b "$addr" -G kcat-group kcat-test -X auto.offset.reset=earliest -e -q -f '%k=%s\n' -m 30 \
	>"$work/group1.txt" 2>"$work/group1.err" || fail "group consume: $(cat "$work/group1.err")"
sort "$work/expected.txt" >"$work/expected.sorted"
sort "$work/group1.txt" | diff -u "$work/expected.sorted" - || fail "group consumer records differ"
kcat -b "$addr" -G kcat-group kcat-test -e -q -f '%k=%s\n' -m 30 >"$work/group2.txt" 2>"$work/group2.err" \
	|| fail "second group consume: $(cat "$work/group2.err")"
[ ! -s "$work/group2.txt" ] || fail "group re-read $(wc -l <"$work/group2.txt") records after committing"

kill -TERM "$pid"
wait "$pid" || fail "broker exited with $?"
pid=""
grep -q "broker stopped" "$work/serve.log" || fail "no clean shutdown"
echo "kcat-test: 5 passed, 0 failed"
