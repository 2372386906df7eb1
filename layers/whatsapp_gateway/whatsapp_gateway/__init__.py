"""WhatsApp gateway: the shared package of every Lambda function (deployed as a layer).

Layout, dependencies pointing inward:
- ``domain``: the WhatsApp rules, pure functions of (state, now); no AWS, no Twilio.
- ``models``: pydantic shapes at the edges (Twilio webhooks, API answers, events).
- ``adapters``: the only modules that talk to DynamoDB, EventBridge, Secrets Manager or Twilio.
- ``inbound`` and friends: one use case each, composing the domain with its adapters.
"""
