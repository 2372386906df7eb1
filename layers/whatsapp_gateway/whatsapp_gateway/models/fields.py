"""Field types shared by the models."""

from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from whatsapp_gateway.domain.addresses import Address

# A WhatsApp address in Twilio's form (``whatsapp:+15551234567``), serialized the same way.
WhatsAppAddress = Annotated[
    Address,
    PlainValidator(lambda value: value if isinstance(value, Address) else Address.parse(value)),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^whatsapp:"}),
]

# A sender or contact as the API accepts it: E.164 or a WhatsApp address.
ContactAddress = Annotated[
    Address,
    PlainValidator(lambda value: value if isinstance(value, Address) else Address.from_id(value)),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]
