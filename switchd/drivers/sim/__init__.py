"""The simulated board: simulated callers, agent phones, the PSTN far end, and their audio."""
