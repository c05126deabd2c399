"""switchd.acd."""
