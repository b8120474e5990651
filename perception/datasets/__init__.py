"""Dataset readers (and writers where the simulator needs them), one module per on-disk format.

Every reader checks the layout it expects and raises one clear error naming the missing or malformed file and
what was expected there; every writer is atomic (see :mod:`perception.fileio`).
"""
