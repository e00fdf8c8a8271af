"""RabbitMQ: messages (no pika in them), the Link (publish with confirms, consume, reconnect),
dead-letter admin, topology and provisioning.

``message`` (what travels), ``chunk`` (a large package as chunk messages: headers, split,
chunk tokens; no pika), ``link`` (the Link), ``supervisor`` (one connection kept alive),
``window`` (publisher-confirm bookkeeping), ``connection`` (the ``Endpoint``: URL, amqps
verified against given CAs, login as the client certificate; short blocking channels),
``deadletter`` (peek, replay recording the broker's user_id), ``topology`` (names, queue tokens,
bounds, permissions), ``provision`` (definitions, ``rabbitmqctl``, declare, check).

The only pika importer. Imports only ``errors`` and ``log`` of edoc_axis.
"""
