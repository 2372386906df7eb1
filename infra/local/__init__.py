"""The local stack (`make local`): the whole gateway on one machine, from template.yaml, with
AWS on an embedded moto server and a Twilio stand-in."""
