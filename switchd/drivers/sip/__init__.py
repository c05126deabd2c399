"""SIP/RTP board driver: real phones and SIP trunks (RFC 3261, RFC 3550, RFC 4733)."""
