"""The only modules that talk to the outside: DynamoDB, EventBridge, Secrets Manager, Twilio."""
