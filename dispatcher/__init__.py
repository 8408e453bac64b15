"""polewatch dispatcher."""
