"""Pydantic shapes at the edges: Twilio's webhooks, the configuration secret, API answers and
the events put on the bus."""
