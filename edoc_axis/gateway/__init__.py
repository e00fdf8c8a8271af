"""The DMS gateway: the national axis client protocol, its HMAC auth, the service, metrics,
the HTTP server, the OpenAPI document, the node backend and a Python client.

Only ``backend`` imports ``node``; the client never imports the HTTP server.
"""
