"""Settings: the side panel and the full profile settings. GUI thread only."""
