"""Edge-chunked message passing for Nequix (JAX): the same energy, forces, stress and Hessian, in a fraction of the memory.

Why (benchmarks/README.md, "Peak memory"): nequix 0.4.5's convolution forms the per-edge tensor product of all
edges at once, and reverse mode keeps it for the backward pass.  For a 1176-atom cell (49 152 padded edges) that is
7.2 GiB of XLA temporaries, above what a 16 GB workstation running a campaign can spare.  Here each convolution
runs over the edges in chunks (``jax.lax.scan``), each chunk rematerialised in the backward pass
(``jax.checkpoint``), so only one chunk's tensor product is alive at a time.  The sum over edges is only
reordered: results equal the unchunked model to float32 rounding (tests/calculators/test_nequix.py).

Written by hand: nequix has no chunked convolution and its fused kernel (``use_kernel=True``, OpenEquivariance)
is GPU-only.  :class:`EdgeChunkedConvolution` wraps a loaded ``nequix.model.NequixConvolution`` and uses its own
weights and sub-modules; :func:`chunk_edges` swaps it into a loaded model (a new pytree; the original is untouched).
Follows the non-kernel branch of ``NequixConvolution.__call__`` in nequix 0.4.5, line for line.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp


class EdgeChunkedConvolution(eqx.Module):
    """A ``NequixConvolution`` evaluated ``edge_chunk`` edges at a time (same call signature)."""

    conv: eqx.Module
    edge_chunk: int = eqx.field(static=True)

    def __call__(self, features, species, sh, radial_basis, senders, receivers):
        c = self.conv
        messages = c.linear_1(features)
        n_nodes, n_edges = features.shape[0], senders.shape[0]
        size = int(self.edge_chunk)
        n_chunks = -(-n_edges // size)
        pad = n_chunks * size - n_edges
        # padding edges: zero spherical harmonics and radial basis, so their messages are exactly zero
        # (the radial MLP has no bias and silu(0) = 0); node 0 as both ends keeps the indices valid
        s_idx = jnp.pad(senders, (0, pad)).reshape(n_chunks, size)
        r_idx = jnp.pad(receivers, (0, pad)).reshape(n_chunks, size)
        sh_c = jnp.pad(sh.array, ((0, pad), (0, 0))).reshape(n_chunks, size, -1)
        rb_c = jnp.pad(radial_basis, ((0, pad), (0, 0))).reshape(n_chunks, size, -1)
        # the tensor product's output irreps (static): from one edge, pruned by XLA
        tp_irreps = e3nn.tensor_product(messages[:1], sh[:1], filter_ir_out=c.tp_irreps).irreps

        @jax.checkpoint
        def chunk(acc, xs):
            s, r, shx, rb = xs
            m = e3nn.tensor_product(messages[s], e3nn.IrrepsArray(sh.irreps, shx), filter_ir_out=c.tp_irreps)
            m = m * jax.vmap(c.radial_mlp)(rb)
            return acc + e3nn.scatter_sum(m, dst=r, output_size=n_nodes).array, None

        acc0 = jnp.zeros((n_nodes, tp_irreps.dim), dtype=messages.array.dtype)
        agg, _ = jax.lax.scan(chunk, acc0, (s_idx, r_idx, sh_c, rb_c))
        messages_agg = e3nn.IrrepsArray(tp_irreps, agg) / jnp.sqrt(jax.lax.stop_gradient(c.avg_n_neighbors))

        skip = c.skip(species, features) if c.index_weights else c.skip(features)
        features = c.linear_2(messages_agg) + skip
        if c.layer_norm is not None:
            features = c.layer_norm(features)
        return e3nn.gate(features, even_act=jax.nn.silu, odd_act=jax.nn.tanh, even_gate_act=jax.nn.silu)


def chunk_edges(model: eqx.Module, edge_chunk: int) -> eqx.Module:
    """``model`` (a loaded ``nequix.model.Nequix``) with every convolution evaluated ``edge_chunk`` edges at a time."""
    if int(edge_chunk) < 1:
        raise ValueError(f"edge_chunk must be >= 1 edge, got {edge_chunk}")
    if any(getattr(layer, "kernel", False) for layer in model.layers):
        raise ValueError("edge chunking follows nequix's JAX convolution; the model was loaded with the fused kernel (use_kernel=True)")
    chunked = [EdgeChunkedConvolution(layer, int(edge_chunk)) for layer in model.layers]
    return eqx.tree_at(lambda m: m.layers, model, chunked)
