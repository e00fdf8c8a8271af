"""Trust: certificates, chains and CRLs, and XML-DSig signing and verification.

``certificate`` reads PEM material and what a certificate names; ``chain`` validates signers
(chain, CRL, cache); ``policy`` is what a signature must be (also the ``[signature]`` settings,
so it loads neither lxml nor signxml); ``structure`` checks a signature's place and shape;
``xmldsig`` is the only signxml importer; ``signature`` signs and verifies. Imports ``edxml``
and ``errors`` only (never ``ops``: the dev PKI builds on this package, not the reverse); does
no I/O of its own.
"""
