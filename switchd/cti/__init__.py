"""switchd.cti."""
