"""MQTT v5 client, topic names and the durable alert outbox."""
