"""RabbitMQ: messages (no pika in them), the Link (publish with confirms, consume, reconnect),
dead-letter admin, topology and provisioning.

``message`` (what travels), ``link`` (the Link), ``supervisor`` (one connection kept alive),
``window`` (publisher-confirm bookkeeping), ``connection`` (URL parameters, short blocking
channels), ``deadletter`` (peek, replay), ``topology`` (names, arguments, permissions),
``provision`` (definitions, ``rabbitmqctl``, declare, check).

The only pika importer. Imports only ``errors`` and ``log`` of edoc_axis.
"""
