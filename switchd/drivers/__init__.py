"""Board drivers: the simulated board (``sim``) today, SIP/RTP next (DESIGN §3)."""
