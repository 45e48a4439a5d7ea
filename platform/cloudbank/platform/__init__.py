"""cloudbank platform."""
