"""RabbitMQ: messages (no pika in them), the Link (publish with confirms, consume, reconnect),
dead-letter admin, topology and provisioning.

The only pika importer. Imports only ``errors`` and ``log`` of edoc_axis.
"""
