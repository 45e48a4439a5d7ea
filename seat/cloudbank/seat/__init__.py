"""cloudbank seat."""
