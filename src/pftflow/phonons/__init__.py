"""Relaxation and harmonic phonons (pure science functions; no jobflow inside)."""
