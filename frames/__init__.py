"""framelab.frames: the distributed, Arrow-typed Frame."""
