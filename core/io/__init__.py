"""EXR and colour I/O, atomic writes, pass naming, sequences (OpenImageIO, OpenColorIO)."""
