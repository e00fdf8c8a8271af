"""The journeys of a package through a node: submit, receive, receipts, relay, large packages
in chunks (``chunk_send``, ``chunk_receive``), the delivery state machine, wiring, the runner
and the lock that keeps one running node per data folder.

The only place that knows the whole journey; may import every subsystem but ``gateway``,
``ops`` and ``cli``.
"""
