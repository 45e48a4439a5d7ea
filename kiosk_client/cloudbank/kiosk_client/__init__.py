"""cloudbank kiosk_client."""
