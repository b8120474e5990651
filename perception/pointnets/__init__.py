"""Point-cloud networks on sparse convolutions (spconv, with the project's verified CPU path)."""
