#!/usr/bin/env bash
# promacct benchmark: one command, everything side by side in one run.
#
#   bash bench/bench.sh            (as root: part 5 makes a veth pair)
#
# Environment: RUNS (default 5) repetitions for medians, BENCH_DIR (default
# /tmp/promacct-bench) for the build and the generated captures (~1.5 GB).
#  1. offline ns/packet of `promacct --read F --once -r 10.1.0.0/16` against a
#     bare libpcap read of the same file (65,536 active addresses, snap
#     length 64): (time at 10M - time at 5M) / 5M packets, so start-up and
#     rendering cancel out;
#  2. resident memory per active histogram with -r 0.0.0.0/0 -r ::/0 over a
#     capture with ~200k active addresses (state only, before any scrape),
#     and the cost of a configured but idle /8;
#  3. scrape rendering throughput of a 600k-histogram state;
#  4. remote-write encode + snappy throughput of the same state;
#  5. live capture over a veth pair at tcpreplay's top speed: packets sent,
#     counted, dropped, agent CPU per packet, with 1 and 2 capture threads,
#     against a bare libpcap reader over the same replay;
#  6. ranges: load time and ns/packet with 1 range against 100,000 ranges
#     over the same traffic (bench/bench_ranges.c).
# PARTS (default "1 2 3 5 6") picks parts; 3 includes 4.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
DIR=${BENCH_DIR:-/tmp/promacct-bench}
B=$DIR/build
mkdir -p "$DIR"
# A build tree configured from another checkout makes cmake refuse: redo it.
if [ -f "$B/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$B/CMakeCache.txt"; then
	rm -rf "$B"
fi

cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DPROMACCT_TESTS=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null
P=$B/promacct
GEN=$B/bench/bench_gen
RUNSTAT=$B/bench/bench_runstat

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wall() { "$RUNSTAT" "$@" 2>&1 >/dev/null | tail -n1 | awk '{ print $1 }'; }

echo "machine: $(nproc) cores, $(awk '/model name/ { $1 = $2 = $3 = ""; print; exit }' /proc/cpuinfo | sed 's/^ *//'), $(free -g | awk '/Mem:/ { print $2 }') GiB"
echo "promacct $("$P" --version | awk '{ print $3 }'), $RUNS runs per figure (medians)"
want() { case " ${PARTS:-1 2 3 5 6} " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- 1. offline accounting vs the libpcap floor --------------------------
if want 1; then
# Two measures: (a) the read loop alone, as each program reports it (promacct
# logs the seconds its capture thread spent on a file; start-up and rendering
# are outside); (b) whole-process wall time at 10M minus 5M packets.
[ -f "$DIR/f5.pcap" ] || "$GEN" "$DIR/f5.pcap" 5000000 65536 64
[ -f "$DIR/f10.pcap" ] || "$GEN" "$DIR/f10.pcap" 10000000 65536 64
for f in f5 f10; do cat "$DIR/$f.pcap" >/dev/null; done # page cache
loop_secs() { sed -n 's/.*msg="capture file read".* seconds=\([0-9.]*\).*/\1/p'; }
for k in floor5 floor10 acct5 acct10 lfloor lacct; do : >"$DIR/t.$k"; done
for _ in $(seq 1 "$RUNS"); do
	"$B/bench/bench_floor" "$DIR/f10.pcap" | loop_secs >>"$DIR/t.lfloor"
	"$P" -R "$DIR/f10.pcap" --once -r 10.1.0.0/16 2>&1 >/dev/null | loop_secs >>"$DIR/t.lacct"
	wall "$B/bench/bench_floor" "$DIR/f5.pcap" >>"$DIR/t.floor5"
	wall "$B/bench/bench_floor" "$DIR/f10.pcap" >>"$DIR/t.floor10"
	wall "$P" -R "$DIR/f5.pcap" --once -r 10.1.0.0/16 >>"$DIR/t.acct5"
	wall "$P" -R "$DIR/f10.pcap" --once -r 10.1.0.0/16 >>"$DIR/t.acct10"
done
lf=$(median <"$DIR/t.lfloor"); la=$(median <"$DIR/t.lacct")
fl5=$(median <"$DIR/t.floor5"); fl10=$(median <"$DIR/t.floor10")
ac5=$(median <"$DIR/t.acct5"); ac10=$(median <"$DIR/t.acct10")
awk -v lf="$lf" -v la="$la" -v a="$fl5" -v b="$fl10" -v c="$ac5" -v d="$ac10" 'BEGIN {
	printf "1. offline, 65536 active addresses, 10M packets, snap length 64 (target <= 1.5x):\n"
	printf "   read loop: floor %.1f ns/packet, promacct %.1f ns/packet, ratio %.2fx\n", lf / 1e7 * 1e9, la / 1e7 * 1e9, la / lf
	floor = (b - a) / 5e6 * 1e9; acct = (d - c) / 5e6 * 1e9
	printf "   10M - 5M wall: floor %.1f ns/packet, promacct %.1f ns/packet, ratio %.2fx\n", floor, acct, acct / floor
	printf "   (medians: floor 5M %.3fs 10M %.3fs; promacct 5M %.3fs 10M %.3fs, each with a 400 MB page rendered)\n", a, b, c, d }'
fi

# ---- 2. memory per active histogram --------------------------------------
if want 2; then
[ -f "$DIR/m200k.pcap" ] || "$GEN" "$DIR/m200k.pcap" 4000000 180000 64 20000
[ -f "$DIR/empty.pcap" ] || "$GEN" "$DIR/empty.pcap" 0 1 64
peak_rss_kib() { # ARGS: VmHWM of a serving agent once its files are read
	local port=$((10000 + RANDOM % 20000)) pid hwm
	"$P" "$@" --web.listen-address "127.0.0.1:$port" 2>"$DIR/agent.log" &
	pid=$!
	for _ in $(seq 1 600); do
		grep -q 'msg="capture file read"' "$DIR/agent.log" && break
		sleep 0.1
	done
	hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
	kill "$pid"
	wait "$pid" || true
	echo "$hwm"
}
base=$(peak_rss_kib -R "$DIR/empty.pcap")
idle8=$(peak_rss_kib -R "$DIR/empty.pcap" -r 0.0.0.0/0 -r 10.0.0.0/8)
full=$(peak_rss_kib -R "$DIR/m200k.pcap" -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000)
hists=$("$P" -R "$DIR/m200k.pcap" --once -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000 2>/dev/null |
	grep -c '^promacct_packet_size_bytes_ipv[46]_[rt]x_count')
addrs=$("$P" -R "$DIR/m200k.pcap" --once -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000 2>/dev/null |
	awk '/^promacct_tracked_addresses / { print $2 }')
awk -v b="$base" -v i="$idle8" -v f="$full" -v h="$hists" -v a="$addrs" 'BEGIN {
	printf "2. memory: base %.1f MiB; idle /0 + /8 ranges %+.1f MiB; %d addresses, %d histograms: %.1f MiB, %.0f bytes per histogram (target <= 128)\n",
		b / 1024, (i - b) / 1024, a, h, f / 1024, (f - b) * 1024 / h }'
fi

# ---- 3, 4. read-out throughput of a 600k-histogram state -----------------
if want 3; then
"$B/bench/bench_render" 200000 "$RUNS" | sed 's/^/3-4. /'
fi

# ---- 6. ranges: 1 against 100,000 ------------------------------------------
if want 6; then
"$B/bench/bench_ranges" 100000 "$RUNS" | sed 's/^/6. /'
fi

# ---- 5. live capture over veth ---------------------------------------------
if ! want 5; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v tcpreplay >/dev/null; then
	echo "5. live: skipped (needs root and tcpreplay)"
	exit 0
fi
[ -f "$DIR/live.pcap" ] || "$GEN" "$DIR/live.pcap" 2000000 180000 64 20000
NS=promacct-bench$$
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null; ip link del pbh0 2>/dev/null || true' EXIT
ip link add pbh0 type veth peer name pbn0
ip link set pbn0 netns "$NS"
sysctl -qw net.ipv6.conf.pbh0.disable_ipv6=1
ip link set pbh0 up
ip netns exec "$NS" ip link set pbn0 up
replay() { # -> "sent pps"
	ip netns exec "$NS" tcpreplay --topspeed -i pbn0 "$DIR/live.pcap" >"$DIR/tcpreplay.out" 2>&1
	awk '/Actual:/ { s = $2 } /Rated:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^pps/) p = $i }
		END { print s, p }' "$DIR/tcpreplay.out"
}
# CPU of the whole agent process (capture, and the scrape between replays is
# not counted: it happens after t1), in clock ticks
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# The live floor: a bare libpcap reader with the agent's ring settings and
# Ethernet snap length (parse_snaplen: 14 + 4 tags + PPPoE + 128), over the
# same replay, its CPU measured the same way.
"$B/bench/bench_floor" -i pbh0 166 >"$DIR/floor.live" 2>&1 &
pid=$!
sleep 1
t0=$(proc_ticks "$pid")
read -r sent pps < <(replay)
sleep 0.5
t1=$(proc_ticks "$pid")
kill "$pid"
wait "$pid" || true
fl_us=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v s="$sent" 'BEGIN { printf "%.3f", t / hz / s * 1e6 }')
awk -v s="$sent" -v pps="$pps" -v u="$fl_us" '/live capture ended/ {
	for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "5. live, libpcap floor (bare reader): sent %d at %.0f packets/s, counted %d, kernel drops %d, CPU %.3f us/packet\n",
		s, pps, v["packets"], v["dropped"], u }' "$DIR/floor.live"
for threads in 1 2; do
	port=$((10000 + RANDOM % 20000))
	"$P" -i pbh0 -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000 --capture-threads "$threads" \
		--web.listen-address "127.0.0.1:$port" 2>"$DIR/live.log" &
	pid=$!
	sleep 1
	# Replay 1 meets ~200k new addresses (1.16M histograms are created);
	# replay 2 is the steady state of a long-running agent.
	for pass in 1 2; do
		t0=$(proc_ticks "$pid")
		read -r sent pps < <(replay)
		sleep 0.5
		t1=$(proc_ticks "$pid")
		curl -fsS -o "$DIR/live.page" "http://127.0.0.1:$port/metrics"
		counted=$(awk '/^promacct_packet_size_bytes_all_count/ { print $2 }' "$DIR/live.page")
		drops=$(awk '/^promacct_pcap_dropped_packets_total/ { s += $2 } END { print s + 0 }' "$DIR/live.page")
		[ "$pass" = 1 ] && what="replay 1, new addresses" || what="replay 2, steady state"
		awk -v s="$sent" -v c="$counted" -v d="$drops" -v t="$((t1 - t0))" -v hz="$hz" \
			-v th="$threads" -v pps="$pps" -v w="$what" -v f="$fl_us" 'BEGIN {
			u = t / hz / s * 1e6
			printf "5. live, %d capture thread(s), %s: sent %d at %.0f packets/s, counted %d in total, kernel drops %d, agent CPU %.3f us/packet (%.2fx the floor; %.1f%% of one core: CPU-bound near %.1fM packets/s per core)\n",
				th, w, s, pps, c, d, u, u / f, u * pps / 1e4, 1 / u }'
	done
	kill "$pid"
	wait "$pid" || true
done
