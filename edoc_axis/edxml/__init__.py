"""The edXML format (QCVN 102:2016): the one hardened XML door (``parser``) and its ``limits``,
``identifier`` conventions, the package ``model``, ``read`` and ``write``, ``status`` packages,
``attachment`` files, the value of a package read once (``parsed``), and judging a package:
the XSD (``schema``), the business rules (``rule``, ``manifest``, ``direction``), their
``finding`` type and the reception ``profile`` that weighs each finding.

Imports nothing of edoc_axis but ``errors``; the only place lxml parses untrusted bytes.
This ``__init__``, ``limits``, ``identifier``, ``model`` and ``profile`` load no lxml, so the
settings can use them cheaply.
"""
