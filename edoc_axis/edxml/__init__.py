"""The edXML format (QCVN 102:2016): the one hardened XML door and its limits, identifiers,
the package model, reading and writing, status packages, attachments, XSD and business rules.

Imports nothing of edoc_axis but ``errors``; the only place lxml parses untrusted bytes.
"""
