#!/bin/sh
# Figures of libFuzzer runs from their logs (fuzz-smoke, fuzz-campaign, docs/fuzzing.md):
# executions, exec/s, seconds, coverage (cov: covered edges, ft: features), corpus, peak RSS,
# crashes (sanitizer reports, harness aborts, timeouts, deadly signals) and leaks.  Several logs
# (the jobs of one codec): the executions, exec/s, crashes and leaks add up; the other figures
# are the largest of the jobs.
[ $# -ge 1 ] || { echo "usage: $0 LOG..." >&2; exit 2; }
for log; do [ -r "$log" ] || { echo "no log $log"; exit 1; }; done
awk '
/^#[0-9]+[ \t].*cov: / {
    for (i = 1; i <= NF; i++) {
        if ($i == "cov:" && $(i + 1) > cov) cov = $(i + 1)
        if ($i == "ft:" && $(i + 1) > ft) ft = $(i + 1)
        if ($i == "corp:") { split($(i + 1), c, "/"); if (c[1] + 0 > corp) { corp = c[1] + 0; corpsize = c[2] } }
    }
}
/^Done [0-9]+ runs in / { if ($5 > secs) secs = $5 }
/^stat::number_of_executed_units:/ { execs += $2 }
/^stat::average_exec_per_sec:/ { rate += $2 }
/^stat::peak_rss_mb:/ { if ($2 > rss) rss = $2 }
/ERROR: LeakSanitizer/ { leaks++ }
/ERROR: AddressSanitizer|runtime error:|deadly signal|ERROR: libFuzzer|decoder_fuzzer: / { crashes++ }
END {
    printf "executions %d, %d exec/s, %s s, cov %s, ft %s, corpus %s/%s, peak rss %s MB, crashes %d, leaks %d, logs %d\n",
        execs, rate, secs, cov, ft, corp, corpsize, rss, crashes, leaks, ARGC - 1
}' "$@"
