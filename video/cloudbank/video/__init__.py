"""cloudbank video."""
