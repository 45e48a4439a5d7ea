"""cloudbank media."""
