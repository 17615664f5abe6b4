"""Back ends for targets other than the local uvloop module (which is ``compiler/codegen``).

A target takes the lowered IR (``compiler/ir/nodes.py``: target-neutral, made from the
same plan the Engine runs) and the copied op sources (``compiler/frontend/extract.py``),
and renders one module from its own templates (``templates/<target>/``).
"""
