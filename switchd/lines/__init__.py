"""switchd.lines."""
