"""Unit conversions used across the package (all in one place so names say the unit)."""

THZ_TO_K = 47.992430733  # h * 1 THz / k_B, in K per THz (MDR convention uses 47.992)
THZ_TO_MEV = 4.135667696  # meV per THz
EV_PER_A3_TO_GPA = 160.21766208  # 1 eV/Å^3 in GPa
