#!/bin/sh
# Profile of the warm dci_request path (issue 6): one backend of a throwaway
# cluster makes CALLS (default 20000) dci_request calls against the bench's
# nginx in one statement while `perf record --call-graph dwarf -p <backend pid>`
# samples it; prints the top functions, writes bench/out/profile.txt and keeps
# bench/out/perf.data for a flame graph:
#     perf script -i bench/out/perf.data | stackcollapse-perf.pl | flamegraph.pl > flame.svg
#
#     bench/profile.sh [CALLS]
#
# perf attaches to the running backend (its pid from pg_backend_pid()), so
# nothing else of the cluster is profiled.  Hardware counters are often missing
# in VMs ("perf stat -e instructions true" says <not supported>): the script
# samples the software cpu-clock event, which works there.
# Without perf at all, the callgrind way is to start the cluster's postmaster
# under `valgrind --tool=callgrind --trace-children=yes` (every backend is then
# profiled, ~50x slower) and read the backend's callgrind.out.<pid>.
set -e
exec /usr/bin/python3 "$(dirname "$0")/run.py" --profile "${1:-20000}"
