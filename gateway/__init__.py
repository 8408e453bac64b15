"""polewatch gateway."""
