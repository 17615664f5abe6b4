"""Load graph.py, find its graphs, extract op source code with its dependencies.

* :mod:`.load` -- ``load_module``, ``find_graphs``, ``select_graph``;
* :mod:`.extract` -- ``extract(graph) -> Extraction`` (imports + code blocks);
* :mod:`.types` -- annotation text: ``param_type``, ``output_types``, ``return_annotation``;
* :mod:`.modinfo` / :mod:`.transform` -- source analysis and the libcst edits ``extract`` makes.
* :mod:`.effects` -- which module-level statements change state the copied code uses.
"""
