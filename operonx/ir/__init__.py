"""The graph IR shared by the Engine and the compiler (importable without either)."""
