"""``pftflow validate``'s peak-memory estimate (run/memory.py): the arithmetic of the measured coefficients, the
CHGNet graph batch set by batch_atoms and the cell size, the warning above the machine's memory.  How close the
estimate comes to measured peaks (quickstart, one chalcogenide with CHGNet) is in benchmarks/README.md, "Peak memory"."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import pftflow.run.memory as memory
from pftflow.calculators import get_calculator
from pftflow.run.memory import PROCESS_BASE_GiB, estimate_memory, fc_GiB
from pftflow.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def test_chgnet_batch_follows_cell_size_and_override():
    c = get_calculator({"backend": "chgnet"})  # batch_atoms 2048
    assert c.atoms_at_once(360, 24) == 5 * 360
    assert c.atoms_at_once(360, 3) == 3 * 360  # fewer cells than fit
    assert c.atoms_at_once(4000, 10) == 4000  # one cell at least
    assert get_calculator({"backend": "chgnet", "batch_atoms": 720}).atoms_at_once(360, 24) == 720
    assert get_calculator({"backend": "sevennet"}).atoms_at_once(360, 24) == 360  # one structure per call


def test_nequix_edge_chunks_bound_the_atoms_at_once():
    """Edge-chunked Nequix holds one chunk's edges (8192 / 42 per atom = 196 atoms' worth) whatever the cell size;
    cells with fewer edges than a chunk, or edge_chunk 0, hold the whole batch."""
    nq = get_calculator({"backend": "nequix"})
    assert nq.atoms_at_once(1176, 28) == 196 and nq.atoms_at_once(120, 10) == 120
    assert get_calculator({"backend": "nequix", "edge_chunk": 0}).atoms_at_once(1176, 28) == 1176
    assert get_calculator({"backend": "nequix", "edge_chunk": 4096, "batch_size": 2}).atoms_at_once(120, 10) == 98


def test_quickstart_estimate_is_the_sum_of_its_parts():
    est = estimate_memory(load_spec(REPO / "workflows" / "quickstart.yaml"))
    sn, cg = get_calculator("sevennet"), get_calculator("chgnet")
    models = sn.memory_model_GiB + cg.memory_model_GiB + 0.30  # + GPAW, the reference
    assert est.models_GiB == pytest.approx(models)
    # largest job: a 16-atom supercell, SevenNet (one cell at a time) beats CHGNet (two cells of 16 atoms)
    assert (est.largest.model, est.largest.n_atoms, est.largest.atoms_at_once) == ("SevenNet-0", 16, 16)
    assert est.peak_GiB == pytest.approx(PROCESS_BASE_GiB + models + 16 * sn.memory_per_atom_GiB + fc_GiB(16))
    assert est.not_estimated == []


def test_warning_when_the_estimate_exceeds_the_machine(monkeypatch):
    monkeypatch.setattr(memory, "machine_memory_GiB", lambda: 0.5)
    lines = estimate_memory(load_spec(REPO / "workflows" / "quickstart.yaml")).lines()
    assert lines[0].startswith("memory: estimated peak 1.1 GiB") and "this machine has 0.5 GiB" in lines[0]
    assert lines[-1].startswith("  warning: the estimate exceeds this machine's memory (0.5 GiB): lower batch_atoms (chgnet)")


def test_chalcogenide_with_chgnet_counts_the_displacements(shared_data, tmp_path, monkeypatch):
    """mp-35216 (BiTe3): 24 displaced 360-atom supercells in the DFT file; CHGNet takes 5 per batch."""
    monkeypatch.chdir(tmp_path)
    ref = shared_data / "chalcogenides" / "mp-35216.phonopy.yaml.xz"
    (tmp_path / "s.yaml").write_text(f"name: m\nkind: phonons\nstore: {{path: camp}}\nmaterials: [{ref}]\n"
                                     "models: [{backend: chgnet, name: CHGNet, batch_atoms: 1024}]\n")
    est = estimate_memory(load_spec(tmp_path / "s.yaml"))
    j = est.largest
    assert (j.material_id, j.n_atoms, j.n_structures, j.atoms_at_once) == ("mp-35216", 360, 24, 720)
    assert j.GiB == pytest.approx(720 * get_calculator("chgnet").memory_per_atom_GiB + fc_GiB(360))


def test_validate_prints_the_estimate_and_other_kinds_say_why_not():
    from pftflow.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["validate", str(REPO / "workflows" / "quickstart.yaml")]) == 0
    assert "  memory: estimated peak 1.1 GiB (process 0.35 + models 0.68; largest job: Si × SevenNet-0 forces" in buf.getvalue()
    est = estimate_memory(load_spec(REPO / "workflows" / "dataset-gpaw-si-nacl.yaml"))
    assert est.peak_GiB is None and est.lines() == ["memory: not estimated for dataset campaigns (measured peaks: benchmarks/README.md, 'Peak memory')"]


@pytest.mark.skipif(memory._malloc_trim() is None or memory.rss_MiB() is None, reason="needs glibc malloc_trim and /proc (Linux)")
def test_release_free_heap_returns_the_holes_a_job_left(monkeypatch):
    """A job that frees most of what it allocated leaves holes between live chunks: glibc keeps them resident (it
    trims only the heap's top). 3000 arrays of 64 KiB (below glibc's mmap threshold: heap chunks), every 16th kept:
    ~176 MiB of holes, which one trim gives back; a second trim right after is skipped (RSS did not grow)."""
    import numpy as np

    monkeypatch.setattr(memory, "_rss_after_trim_MiB", None)
    arrays = [np.ones(8192) for _ in range(3000)]  # 64 KiB each, touched
    kept = arrays[::16]
    del arrays
    before = memory.rss_MiB()
    assert memory.release_free_heap(min_growth_MiB=0.0)
    after = memory.rss_MiB()
    assert before - after > 100.0, (before, after)
    assert not memory.release_free_heap()  # default gate: no growth since the trim
    assert sum(a[0] for a in kept) == len(kept)
