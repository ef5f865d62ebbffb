"""Models: Hub search, a repo's page (the one quant picker), the Models page, the model picker, the profile list
and the download queue. GUI thread only; listings and disk scans run on workers."""
