"""RSS and memory mappings of one cached Nequix calculator as it meets new padded shapes (issue 17 diagnosis).

Run: OMP_NUM_THREADS=1 python benchmarks/nequix_shapes_maps.py (needs scripts/install_nequix.sh and ../shared/models/nequix).
"""
import time

from ase.build import bulk
from pftflow.calculators.backends import cached_calculator
calc = cached_calculator({"backend": "nequix", "model": "../shared/models/nequix/nequix-mp-1.nqx", "name": "n"})
def rss():
    for l in open("/proc/self/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) / 2**20
def maps():
    return sum(1 for _ in open("/proc/self/maps"))
si = bulk("Si", "diamond", a=5.43)
for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]:
    a = si.repeat((n, n, 2)); a.rattle(0.01, seed=n)
    t = time.time(); calc.compute([a], stress=True)
    print(f"{len(a):5d} atoms  RSS {rss():.2f} GiB  maps {maps():6d}  {time.time()-t:.1f} s", flush=True)
