"""switchd.core."""
