"""Shipped data (codebooks, catalogues, policies, aliases), installed as the package ``grouper.codebooks``.

Found at run time through ``grouper.resources``; nothing here is code.
"""
