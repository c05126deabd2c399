"""switchd.ivr."""
