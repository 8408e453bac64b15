"""polewatch loadtest."""
