"""Semantic analysis: AST -> checked IR (``program.load_program`` is the entry point).

One module per concern, in the order ``program.py`` runs them: ``imports`` (the file
graph), ``scope`` (every declared name), ``decls`` (types, signatures, LMs, tools),
``modules`` and ``exprs`` (bodies, dataflow, constraints), ``options`` (LM and predictor
settings), ``data`` (datasets, metrics), ``optimize`` (optimize blocks, checked against
``optimizer_specs``), ``typecheck`` (type compatibility). Nothing here calls an LM or
imports the runtime.
"""
