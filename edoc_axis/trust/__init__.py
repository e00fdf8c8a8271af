"""Trust: certificates, chains and CRLs, and XML-DSig signing and verification.

The only signxml importer. Imports ``edxml`` and ``errors``; does no I/O of its own.
"""
