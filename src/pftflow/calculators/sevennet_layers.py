"""Activation checkpointing of SevenNet's interaction layers: the forces, energy and stress of a large cell in half the
memory.

Why (benchmarks/README.md, "Peak memory"): a force call keeps every interaction layer's intermediates (mostly the
per-edge tensor products of its convolution) for the backward pass that gives the forces.  For SevenNet-0 on the
960-atom cells of mp-7943 that is 3.4 GiB above the loaded model, and it set the peak of the whole pft-paper-models
campaign (6.29 GB).  Here each layer's modules run under :func:`torch.utils.checkpoint.checkpoint`: the forward pass
keeps only the layer's input, and the backward pass recomputes one layer at a time.  The recomputation runs the same
kernels on the same inputs; only the gradients reaching a layer's inputs are summed in another order, so energies are
bitwise those of the plain model and forces equal to float32 rounding (1 ulp in 4 of 192 entries of a 64-atom cell,
bitwise on two 960-atom cells; tests/calculators/test_sevennet_layers.py), and as deterministic.  Measured 2026-12-07 (``benchmarks/sevennet_checkpoint.py``, SevenNet-0, one core, 3 calls): on mp-7943 (960 atoms) peak
3.39 -> 1.84 GiB above the model at +11 % wall; on BiTe3 (360 atoms) 0.91 -> 0.58 GiB at +27 % wall, hence a threshold
in cell size
(``SevenNetCalculator(checkpoint_atoms=...)``, default :data:`pftflow.calculators.backends.SEVENNET_CHECKPOINT_ATOMS`).

Written by hand: sevenn 0.10.4 has no checkpointing option.  :func:`checkpoint_layers` regroups the modules of a
loaded ``AtomGraphSequential`` (``0_self_connection_intro`` ... ``0_equivariant_gate``, then ``1_...``) into one
:class:`CheckpointedLayer` per layer, in place; the weights are the model's own.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict

import torch
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

_LAYER = re.compile(r"^(\d+)_")


class CheckpointedLayer(torch.nn.Module):
    """The modules of one SevenNet interaction layer (named as in the model), run under activation checkpointing for
    graphs of at least ``min_atoms`` nodes, plainly for smaller ones."""

    def __init__(self, modules: "OrderedDict[str, torch.nn.Module]", min_atoms: int):
        super().__init__()
        self.layer = torch.nn.ModuleDict(modules)
        self.min_atoms = int(min_atoms)

    def _run(self, data):
        for module in self.layer.values():
            data = module(data)
        return data

    def _run_on_copy(self, data):
        # the layer's modules write into the data they get; the recomputation in the backward pass must see the
        # layer's input, so each run works on a shallow copy (the same tensors, a new mapping)
        return self._run(copy.copy(data))

    def forward(self, data):
        import sevenn._keys as KEY

        if not torch.is_grad_enabled() or data[KEY.NODE_FEATURE].shape[0] < self.min_atoms:
            return self._run(data)
        # early stop raises an exception out of the recomputation, which the TorchScript-compiled e3nn tensor
        # products turn into a RuntimeError: recompute each layer whole instead
        with set_checkpoint_early_stop(False):
            return checkpoint(self._run_on_copy, data, use_reentrant=False)


def checkpoint_layers(model: torch.nn.Module, min_atoms: int) -> int:
    """Regroup the interaction layers of a loaded SevenNet ``AtomGraphSequential`` into :class:`CheckpointedLayer`
    modules (``<i>_checkpointed``) that checkpoint graphs of at least ``min_atoms`` nodes, in place, keeping the order.  Returns the number of layers wrapped (0 when there is
    nothing left to wrap)."""
    entries: list[tuple[str, object]] = []  # (name, module) or (layer number, [(name, module), ...])
    for name, module in model._modules.items():
        m = _LAYER.match(name)
        if m is None or isinstance(module, CheckpointedLayer):
            entries.append((name, module))
        elif entries and isinstance(entries[-1][1], list) and entries[-1][0] == m.group(1):
            entries[-1][1].append((name, module))
        else:
            entries.append((m.group(1), [(name, module)]))
    new = OrderedDict()
    for key, value in entries:
        if isinstance(value, list):
            new[f"{key}_checkpointed"] = CheckpointedLayer(OrderedDict(value), min_atoms)
        else:
            new[key] = value
    wrapped = sum(isinstance(v, list) for _, v in entries)
    model._modules.clear()
    model._modules.update(new)
    return wrapped
