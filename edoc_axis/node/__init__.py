"""The journeys of a package through a node: submit, receive, receipts, relay, the delivery
state machine, wiring and the runner.

The only place that knows the whole journey; may import every subsystem but ``gateway``,
``ops`` and ``cli``.
"""
