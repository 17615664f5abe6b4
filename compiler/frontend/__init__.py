"""Load graph.py, find its graphs, extract op source code with its dependencies."""
