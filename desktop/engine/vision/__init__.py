"""Images for vision models (any process): checking, scaling and storing them (``images``). The projector files
themselves are GGUFs and live with the other GGUF readers (``desktop.engine.gguf.projector``)."""
