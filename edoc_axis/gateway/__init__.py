"""The DMS gateway: the national axis client protocol served to an agency's document system.

One concept per module: ``protocol`` (calls, answers, errors, the ``DmsBackend`` interface),
``sdk`` (the SDK's wire formats), ``auth`` (HMAC authentication), ``ledger`` (answered signed
requests), ``service`` (dispatch), ``metrics`` (prometheus-client), ``server`` (the HTTP server,
aiohttp), ``guard`` (its caps per client and deadlines per request), ``tls`` (HTTPS),
``openapi``, ``backend`` (the node behind it), ``client`` (a DMS's side) and ``conformance``
(its selftest).

May import ``config``, ``errors``, ``log`` and ``edxml``; only ``backend`` imports ``node``,
``store`` and ``transport``. ``client`` and ``conformance`` never import the HTTP server
(``server``, ``service``, aiohttp), and ``client`` loads no lxml.
"""
