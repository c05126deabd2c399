"""switchd.recorder."""
