"""PFT loss: energy / force / stress / Hessian-column errors, Hessian columns by Hessian-vector products.

Written by hand (no library offers it): for every structure and step we pick k random Hessian columns b and
compute H·e_b = ∂/∂r (∂E/∂r · e_b) by a second backward pass through the model's force graph
(``torch.autograd.grad(..., create_graph=True)`` twice).  Structures in a batch are independent, so one HVP
with a vector that has a single 1 per structure gives one column of every structure's Hessian at once: cost
is linear in the number of atoms.  (``torch.func.jvp`` forward-over-reverse fails on MACE, hence double
backward.)

Units: E eV, F eV/Å, σ eV/Å³ (ASE sign, positive = tensile), H eV/Å² (not mass-weighted).
Loss (Koker et al. 2026): w_E·MAE(E/N) + w_F·mean_atoms‖ΔF‖₂ + w_σ·MAE(σ) + w_H·MAE(H column).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pftflow.calculators.energy_models import EnergyModel, GraphBatch, predict  # noqa: F401  (predict: public here too)


@dataclass
class Targets:
    """Per-batch targets; a ``None`` entry or a False mask entry means "no target for that structure".

    energy_eV (B,), energy_mask (B,) bool; forces_eV_per_A (N, 3), force_mask (B,) bool;
    stress_eV_per_A3 (B, 3, 3), stress_mask (B,) bool; hessians_eV_per_A2: list of (3N_s, 3N_s) or None.
    """

    energy_eV: torch.Tensor | None = None
    energy_mask: torch.Tensor | None = None
    forces_eV_per_A: torch.Tensor | None = None
    force_mask: torch.Tensor | None = None
    stress_eV_per_A3: torch.Tensor | None = None
    stress_mask: torch.Tensor | None = None
    hessians_eV_per_A2: list = field(default_factory=list)

    def has_hessian(self) -> bool:
        return any(h is not None for h in self.hessians_eV_per_A2)




class LossWeights(BaseModel):
    """PFT paper defaults: energy 20, forces 20, stress 5, Hessian 100."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    energy: float = Field(20.0, ge=0, description="weight of the energy-per-atom MAE (eV/atom)^-1, >= 0", examples=[20.0])
    forces: float = Field(20.0, ge=0, description="weight of the mean force-error norm (eV/Å)^-1, >= 0", examples=[20.0])
    stress: float = Field(5.0, ge=0, description="weight of the stress MAE (eV/Å³)^-1, >= 0", examples=[5.0])
    hessian: float = Field(100.0, ge=0, description="weight of the Hessian-column MAE (eV/Å²)^-1, >= 0", examples=[100.0])

    @model_validator(mode="after")
    def _some_positive(self):
        if not any(w > 0 for w in (self.energy, self.forces, self.stress, self.hessian)):
            raise ValueError("all loss weights are 0: nothing would be trained")
        return self

    # mapping protocol, so that ``LossWeights(**weights)`` and ``dict(weights)`` keep working on an instance
    def keys(self):
        return type(self).model_fields.keys()

    def __getitem__(self, key: str):
        return getattr(self, key)


def hessian_column_targets(targets: Targets, graph: GraphBatch, columns: torch.Tensor):
    """Reference columns (k, N, 3) and atom mask (k, N) for the sampled ``columns`` (k, B)."""
    k = columns.shape[0]
    n = graph.positions_A.shape[0]
    ref = torch.zeros(k, n, 3, dtype=graph.positions_A.dtype, device=graph.positions_A.device)
    mask = torch.zeros(k, n, dtype=torch.bool, device=graph.positions_A.device)
    for s, h in enumerate(targets.hessians_eV_per_A2):
        if h is None:
            continue
        a, b = int(graph.ptr[s]), int(graph.ptr[s + 1])
        for c in range(k):
            col = int(columns[c, s])
            if col < 0:
                continue
            ref[c, a:b] = h[:, col].reshape(b - a, 3)
            mask[c, a:b] = True
    return ref, mask


def sample_columns(graph: GraphBatch, targets: Targets, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k random Hessian columns per structure with a Hessian target (-1 elsewhere), (k, B) long."""
    cols = torch.full((k, graph.n_structures), -1, dtype=torch.long)
    for s, h in enumerate(targets.hessians_eV_per_A2):
        if h is not None:
            cols[:, s] = torch.randint(0, 3 * int(graph.n_atoms[s]), (k,), generator=generator)
    return cols.to(graph.positions_A.device)


def pft_loss(
    model: EnergyModel,
    graph: GraphBatch,
    targets: Targets,
    weights: LossWeights = LossWeights(),
    *,
    columns: torch.Tensor | None = None,
    create_graph: bool = True,
    probes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar tensor) and its parts (floats; MAEs in eV/atom, eV/Å, eV/Å³, eV/Å²).

    Terms whose targets are absent, or whose weight is 0, are skipped (and not computed: no stress derivative
    without stress targets, no HVP without Hessian targets or columns).
    ``probes`` = (v (P, N, 3), H_ref·v (P, N, 3) eV/Å², entry weights (P, N)) replaces ``columns``
    (:func:`pftflow.training.probes.batch_probes`); the Hessian part is then the weighted probe error.
    """
    use_e = weights.energy > 0 and targets.energy_mask is not None and bool(targets.energy_mask.any())
    use_f = weights.forces > 0 and targets.force_mask is not None and bool(targets.force_mask.any())
    use_s = weights.stress > 0 and targets.stress_mask is not None and bool(targets.stress_mask.any())
    use_h = weights.hessian > 0 and (columns is not None or probes is not None) and targets.has_hessian()
    pred = predict(model, graph, columns=columns if use_h and probes is None else None, stress=use_s, create_graph=create_graph,
                   probes=probes[0] if use_h and probes is not None else None)
    total = pred["energy_eV"].new_zeros(())
    parts: dict[str, float] = {}
    if use_e:
        m = targets.energy_mask
        err = ((pred["energy_eV"] - targets.energy_eV) / graph.n_atoms.to(total.dtype))[m].abs().mean()
        total = total + weights.energy * err
        parts["energy_mae_eV_per_atom"] = float(err.detach())
    if use_f:
        atom_mask = targets.force_mask[graph.batch]
        err = torch.linalg.vector_norm(pred["forces_eV_per_A"] - targets.forces_eV_per_A, dim=-1)[atom_mask].mean()
        total = total + weights.forces * err
        parts["force_l2_eV_per_A"] = float(err.detach())
    if use_s:
        m = targets.stress_mask
        err = (pred["stress_eV_per_A3"] - targets.stress_eV_per_A3)[m].abs().mean()
        total = total + weights.stress * err
        parts["stress_mae_eV_per_A3"] = float(err.detach())
    if use_h and probes is not None:
        v, ref_hv, w = probes
        per_atom = (pred["hessian_probes_eV_per_A2"] - ref_hv).abs().mean(-1)
        err = (per_atom * w).sum(-1).mean()
        total = total + weights.hessian * err
        parts["hessian_mae_eV_per_A2"] = float(err.detach())
    elif use_h:
        ref, mask = hessian_column_targets(targets, graph, columns)
        err = (pred["hessian_columns_eV_per_A2"] - ref)[mask].abs().mean()
        total = total + weights.hessian * err
        parts["hessian_mae_eV_per_A2"] = float(err.detach())
    parts["loss"] = float(total.detach())
    return total, parts


def model_hessian(model: EnergyModel, graph: GraphBatch, structure: int = 0) -> torch.Tensor:
    """Full Hessian (3N_s, 3N_s) eV/Å² of one structure of ``graph`` by 3N_s HVPs on one force graph
    (evaluation helper; for large cells prefer finite displacements)."""
    positions = graph.positions_A.detach().clone().requires_grad_(True)
    strain = torch.zeros(graph.n_structures, 3, 3, dtype=positions.dtype, device=positions.device)
    energy = model.energy(graph, positions, strain)
    (g,) = torch.autograd.grad(energy.sum(), positions, create_graph=True)
    n = int(graph.n_atoms[structure])
    a = 3 * int(graph.ptr[structure])
    cols = []
    for b in range(3 * n):
        v = torch.zeros_like(positions).reshape(-1)
        v[a + b] = 1.0
        (hv,) = torch.autograd.grad(g, positions, grad_outputs=v.view_as(positions), retain_graph=True)
        cols.append(hv.reshape(-1)[a : a + 3 * n].detach())
    return torch.stack(cols, dim=1)
