#!/usr/bin/env bash
# Random loss for TCP on the loopback interface, for comparing a TCP transport with UDP through
# slip-impair at the same loss rate. Uses nftables (Debian package `nftables`): a rule in the
# output hook of `lo` drops a random share of the packets to and from one TCP port, so the
# kernel's own TCP sees real losses and retransmits (tc netem is not available here).
#
# Needs CAP_NET_ADMIN (root, or a container granted it). Everything lives in one table,
# `inet slip_impair` (or `inet $SLIP_IMPAIR_TABLE`), and for `queue` on kernels without nftables'
# queue statement also in the iptables chain of that name (and the `ip filter` table iptables
# then creates, when there was none), so `remove` takes all of it away and nothing else is
# touched.
#
#   scripts/impair-tcp.sh add PORT PERCENT   drop PERCENT % of packets to and from tcp PORT on lo
#   scripts/impair-tcp.sh queue PORT NUM     queue packets to and from tcp PORT on lo to nftables
#                                            queue NUM (slip-nfq-impair: loss and delay; start it first)
#   scripts/impair-tcp.sh status             the rules and their packet counters
#   scripts/impair-tcp.sh remove             delete the table (all ports)
set -euo pipefail

name=${SLIP_IMPAIR_TABLE:-slip_impair}
[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "impair-tcp: bad table name '$name'" >&2; exit 2; }
table="inet $name"

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

command -v nft >/dev/null || { echo "impair-tcp: nft not found (apt-get install nftables)" >&2; exit 1; }

case "${1:-}" in
  add)
    [[ $# -eq 3 ]] || usage
    port=$2
    pct=$3
    [[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || { echo "impair-tcp: bad port '$port'" >&2; exit 2; }
    [[ $pct =~ ^[0-9]+$ && $pct -le 100 ]] || { echo "impair-tcp: PERCENT must be an integer 0-100, got '$pct'" >&2; exit 2; }
    if ! nft list table $table >/dev/null 2>&1; then
      nft add table $table || { echo "impair-tcp: cannot create an nftables table (needs CAP_NET_ADMIN)" >&2; exit 1; }
      nft add chain $table out '{ type filter hook output priority 0 ; policy accept ; }'
    fi
    # numgen random mod 100 is uniform in 0..99: "< pct" drops pct % of packets.
    nft add rule $table out oifname lo tcp dport "$port" numgen random mod 100 '<' "$pct" counter drop
    nft add rule $table out oifname lo tcp sport "$port" numgen random mod 100 '<' "$pct" counter drop
    echo "impair-tcp: dropping $pct% of tcp packets to and from port $port on lo"
    ;;
  queue)
    [[ $# -eq 3 ]] || usage
    port=$2
    num=$3
    [[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || { echo "impair-tcp: bad port '$port'" >&2; exit 2; }
    [[ $num =~ ^[0-9]+$ && $num -le 65535 ]] || { echo "impair-tcp: NUM must be a queue number 0-65535, got '$num'" >&2; exit 2; }
    # Each packet on lo passes the output hook once: queued there, it is delayed (or dropped) once
    # per direction. Without a program on the queue the kernel drops what the rule queues.
    # nftables' own queue statement needs the kernel's nft_queue (CONFIG_NFT_QUEUE); kernels
    # without it still have the xtables NFQUEUE target, which iptables (Debian package
    # `iptables`, the nf_tables variant) reaches through nftables' compatibility layer. The rules
    # then live in the iptables chain named like the table, jumped to from OUTPUT.
    if ! nft list table $table >/dev/null 2>&1; then
      nft add table $table || { echo "impair-tcp: cannot create an nftables table (needs CAP_NET_ADMIN)" >&2; exit 1; }
      nft add chain $table out '{ type filter hook output priority 0 ; policy accept ; }'
    fi
    if nft add rule $table out oifname lo tcp dport "$port" counter queue num "$num" 2>/dev/null; then
      nft add rule $table out oifname lo tcp sport "$port" counter queue num "$num"
    else
      command -v iptables >/dev/null || { echo "impair-tcp: this kernel has no nft queue statement and iptables is missing (apt-get install iptables)" >&2; exit 1; }
      [[ ${#name} -le 28 ]] || { echo "impair-tcp: table name '$name' is too long for an iptables chain" >&2; exit 2; }
      # iptables creates the `ip filter` table when there is none: an empty chain in our own
      # table remembers that, so that `remove` deletes it again if nothing else went in.
      if ! nft list table ip filter >/dev/null 2>&1; then
        nft list chain $table made_ip_filter >/dev/null 2>&1 || nft add chain $table made_ip_filter
      fi
      iptables -w -N "$name" 2>/dev/null || true
      iptables -w -C OUTPUT -j "$name" 2>/dev/null || iptables -w -I OUTPUT -j "$name"
      iptables -w -A "$name" -o lo -p tcp --dport "$port" -j NFQUEUE --queue-num "$num"
      iptables -w -A "$name" -o lo -p tcp --sport "$port" -j NFQUEUE --queue-num "$num"
    fi
    echo "impair-tcp: tcp packets to and from port $port on lo go to queue $num"
    ;;
  status)
    nft list table $table 2>/dev/null || echo "impair-tcp: no rules"
    if command -v iptables >/dev/null && iptables -w -n -L "$name" >/dev/null 2>&1; then
      iptables -w -n -v -L "$name"
    fi
    ;;
  remove)
    removed=
    made_filter=
    if nft list table $table >/dev/null 2>&1; then
      if nft list chain $table made_ip_filter >/dev/null 2>&1; then made_filter=1; fi
      nft delete table $table
      removed=1
    fi
    if command -v iptables >/dev/null && iptables -w -n -L "$name" >/dev/null 2>&1; then
      while iptables -w -D OUTPUT -j "$name" 2>/dev/null; do :; done
      iptables -w -F "$name"
      iptables -w -X "$name"
      removed=1
    fi
    # The `ip filter` table `queue` made iptables create goes too, unless it holds a rule, a
    # chain of its own or a policy other than ACCEPT by now (someone else's).
    if [[ -n $made_filter ]] && command -v iptables >/dev/null && nft list table ip filter >/dev/null 2>&1 &&
      ! iptables -w -S | grep -q -E '^-(A|N) |^-P [A-Z]+ (DROP|REJECT)'; then
      nft delete table ip filter
    fi
    if [[ -n $removed ]]; then echo "impair-tcp: removed"; fi
    ;;
  *)
    usage
    ;;
esac
