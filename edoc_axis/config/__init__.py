"""The node's configuration: one frozen ``Settings``, loaded once from a TOML file plus
``EDOC_AXIS_*`` environment overrides, and passed explicitly; no globals.

``settings`` (the frozen types, one per section), ``zone`` (time zones by name), ``schema`` (every
key of the file, its type and variable), ``convert`` (one value to its type), ``problems`` (one
error listing every problem), ``dms`` (the ``[[dms]]`` tables), ``load`` (``load_settings``),
``render`` (the annotated file ``init`` writes and the shipped example) and ``dms_system`` (a
``[[dms]]`` table appended to an existing file, for ``dms add``). No re-exports: import each name
from its module.

A bottom layer: imports only ``errors``, ``log`` (the warning about a misspelt variable), the
lxml-free ``edxml.limits``, ``edxml.identifier`` and ``edxml.profile``, ``trust.policy`` and
``transport.topology`` (the broker's message limit, which the package size limit may not pass).
Importing any of it loads no lxml, signxml, pika or HTTP server (the ``config-light`` contract
in setup.cfg, and tests/test_contracts.py at run time).
"""
