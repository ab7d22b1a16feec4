"""Unit conversions used across the package (all in one place so names say the unit)."""

THZ_TO_K = 47.992430733  # h * 1 THz / k_B, in K per THz (MDR convention uses 47.992)
THZ_TO_MEV = 4.135667696  # meV per THz
EV_PER_A3_TO_GPA = 160.21766208  # 1 eV/Å^3 in GPa


def temperatures_K_list(v):
    """Pydantic before-validator of a temperature grid (K): a number becomes a one-element list and a numpy
    array a list; raises ``ValueError`` when a temperature is negative. Other values pass to pydantic."""
    v = v.tolist() if hasattr(v, "tolist") else v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if isinstance(v, (list, tuple)) and any(isinstance(t, (int, float)) and not isinstance(t, bool) and t < 0 for t in v):
        raise ValueError(f"temperatures must be >= 0 K, got {list(v)}")
    return v
