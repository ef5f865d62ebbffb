"""The Qt front end. Thin: it shows engine state and forwards user intent; all work is in the engine."""
