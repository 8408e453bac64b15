"""polewatch edge."""
