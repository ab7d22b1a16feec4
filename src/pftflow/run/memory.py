"""Peak-memory estimate of a campaign run (``pftflow validate``), from measured per-backend coefficients.

A ``pftflow run`` is one process: it imports the pipeline, keeps every model it loaded (``cached_calculator``)
and runs one job at a time.  Its peak is therefore

    process base + the loaded models + the largest force job's evaluation + its force constants,

with the evaluation (:meth:`ForceCalculator.evaluation_GiB`) ``memory_per_atom_GiB`` x the atoms one call holds at
once (:meth:`ForceCalculator.atoms_at_once`: one structure for sevennet / mace / ase, a graph batch of up to
``batch_atoms`` for chgnet, ``batch_size`` padded structures for nequix, or one edge chunk's atoms where nequix
chunks its convolutions); sevennet cells of ``checkpoint_atoms`` or more use its checkpointed coefficient. The coefficients are measured on the development machine (class attributes of each
backend; where each comes from: benchmarks/README.md, "Peak memory"). A backend without measured coefficients is
named in the estimate, not guessed. Phonons campaigns only: κ and training campaigns print their measured peaks'
location instead.

Between jobs a run gives the C heap's free pages back to the OS (:func:`release_free_heap`): without it, the
memory a job's temporaries freed stays in the process (glibc keeps freed chunks in its heap), and a campaign's RSS
floor grows job by job to well above what the next job needs.

Units: GiB (2**30 bytes), atoms.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

import numpy as np

from pftflow.calculators import get_calculator
from pftflow.identity import REFERENCE_MODEL
from pftflow.materials.readers import read_reference
from pftflow.sampling.displacements import fc2_displacements
from pftflow.spec.phonons import ComputeMaterial

#: ``pftflow run`` with the pipeline imported (jobflow, phonopy, torch, the backends), before any model is loaded:
#: peak RSS 0.28 GiB measured 2026-12-06 (benchmarks/README.md, "Peak memory"); + the store and job documents
PROCESS_BASE_GiB = 0.35


@dataclass
class JobMemory:
    """One force job: who, how big, and its estimated memory above the loaded models (GiB)."""

    material_id: str
    model: str
    backend: str
    n_atoms: int
    n_structures: int
    atoms_at_once: int
    GiB: float


@dataclass
class MemoryEstimate:
    """Estimated peak RSS of a campaign run (GiB) and what sets it."""

    peak_GiB: float | None
    largest: JobMemory | None = None
    models_GiB: float = 0.0
    base_GiB: float = PROCESS_BASE_GiB
    machine_GiB: float | None = None
    not_estimated: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def exceeds_machine(self) -> bool:
        return self.peak_GiB is not None and self.machine_GiB is not None and self.peak_GiB > self.machine_GiB

    def lines(self) -> list[str]:
        if self.peak_GiB is None:
            return [f"memory: {self.note}"]
        j = self.largest
        where = "" if j is None else (
            f"; largest job: {j.material_id} × {j.model} forces, {j.n_structures} × {j.n_atoms} atoms, {j.atoms_at_once} atoms at once, "
            f"{j.GiB:.2f} GiB")
        mach = "" if self.machine_GiB is None else f"; this machine has {self.machine_GiB:.1f} GiB"
        out = [f"memory: estimated peak {self.peak_GiB:.1f} GiB (process {self.base_GiB:.2f} + models {self.models_GiB:.2f}{where}){mach}"]
        if self.not_estimated:
            out.append("  not in the estimate (no measured coefficients): " + ", ".join(self.not_estimated))
        if self.exceeds_machine:
            out.append(f"  warning: the estimate exceeds this machine's memory ({self.machine_GiB:.1f} GiB): lower batch_atoms (chgnet), "
                       "edge_chunk (nequix) or checkpoint_atoms (sevennet) of the largest job's model, use smaller supercells, or run on a larger machine")
        return out


#: RSS growth (MiB) since the last trim below which :func:`release_free_heap` does not trim: a trim walks the whole
#: heap (0.3-1.2 s with 1-2 GiB free, measured 2026-12-07), and most jobs (analysis, compare) free next to nothing
TRIM_ABOVE_MiB = 128.0
_rss_after_trim_MiB: float | None = None


def _malloc_trim():
    """glibc's ``malloc_trim`` or None (another C library: musl, macOS)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def rss_MiB() -> float | None:
    """Resident set size of this process (MiB), or None where ``/proc`` has none."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def release_free_heap(min_growth_MiB: float = TRIM_ABOVE_MiB) -> bool:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim(0)``, which also releases free pages inside
    the heap, not only at its top), when RSS grew by at least ``min_growth_MiB`` since the last trim. True when it
    trimmed. Called by both runners after each job (:mod:`pftflow.run.local`, :mod:`pftflow.run.fireworks`).

    Why by hand: neither Python nor the libraries release it. The force jobs of torch and JAX models free GiBs of
    temporaries into glibc's heap, which keeps them (fragmented, under live chunks). Measured 2026-12-07 on the three
    models of workflows/pft-paper-models.yaml, one force call each on six supercells of 512-1176 atoms in one process
    (benchmarks/README.md, "Peak memory"): RSS after the last call 3.15 GiB, 1.83 GiB after one trim (benchmarks/memory_heap_floor.py); trimmed after
    each call, the floor stayed at 0.9-1.6 GiB.
    """
    global _rss_after_trim_MiB
    trim = _malloc_trim()
    if trim is None:
        return False
    now = rss_MiB()
    if now is not None and _rss_after_trim_MiB is not None and now - _rss_after_trim_MiB < min_growth_MiB:
        return False
    trim(0)
    _rss_after_trim_MiB = rss_MiB()
    return True


def machine_memory_GiB() -> float | None:
    """Physical memory of this machine (GiB), or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def fc_GiB(n_atoms: int) -> float:
    """Force constants of an ``n_atoms`` supercell (N, N, 3, 3) float64, held about three times while phonopy
    builds and symmetrises them (GiB)."""
    return 3 * 72.0 * n_atoms**2 / 2**30


def _material_sizes(m, displacement_A: float) -> tuple[int, int, int | None]:
    """(supercell atoms, displacements of a model's force set, displacements the reference computes or None)."""
    if isinstance(m, ComputeMaterial):
        ph, cells = fc2_displacements(m.structure.atoms(), m.supercell_matrix, m.primitive_matrix, distance_A=displacement_A)
        return len(ph.supercell), len(cells), len(cells)
    ref = read_reference(m.reference_file, fmt=m.reference_format, force_sets=m.force_sets, born=m.born)
    n = int(round(len(ref.unitcell.symbols) * abs(np.linalg.det(np.asarray(ref.supercell_matrix, dtype=float)))))
    ds = ref.dataset or {}
    n_disp = len(ds.get("first_atoms") or ds.get("displacements") or []) or None
    if n_disp is None:  # no displacement set stored (force constants only): the count phonopy makes for a model
        ph = ref.to_phonopy(produce_fc=False)
        ph.generate_displacements(distance=displacement_A)
        n_disp = len(ph.supercells_with_displacements)
    return n, n_disp, None


def estimate_memory(spec) -> MemoryEstimate:
    """Estimated peak RSS of ``pftflow run spec`` (see the module docstring)."""
    if getattr(spec, "kind", None) != "phonons":
        return MemoryEstimate(None, note=f"not estimated for {spec.kind} campaigns (measured peaks: benchmarks/README.md, 'Peak memory')",
                              machine_GiB=machine_memory_GiB())
    models = [(mod.name, get_calculator(mod.calculator_spec())) for mod in spec.models]
    if spec.reference is not None and getattr(spec.reference, "calculator", None) is not None:
        models.append((REFERENCE_MODEL, get_calculator(spec.reference.calculator.calculator_spec())))
    not_est = sorted({f"{name} ({calc.backend})" for name, calc in models if calc.memory_per_atom_GiB is None})
    models_GiB = sum(calc.memory_model_GiB or 0.0 for _, calc in models)
    disp = spec.settings.phonons.displacement_A
    largest: JobMemory | None = None
    for m in spec.materials:
        n, n_disp, n_ref = _material_sizes(m, disp)
        for name, calc in models:
            count = n_ref if name == REFERENCE_MODEL else n_disp
            if count is None or calc.memory_per_atom_GiB is None:
                continue
            at_once = calc.atoms_at_once(n, count)
            job = JobMemory(m.id, name, calc.backend, n, count, at_once, calc.evaluation_GiB(n, count) + fc_GiB(n))
            if largest is None or job.GiB > largest.GiB:
                largest = job
    peak = PROCESS_BASE_GiB + models_GiB + (largest.GiB if largest else 0.0)
    return MemoryEstimate(peak, largest, models_GiB, PROCESS_BASE_GiB, machine_memory_GiB(), not_est)
