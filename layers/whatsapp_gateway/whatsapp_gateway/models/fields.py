"""Field types shared by the models."""

from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from whatsapp_gateway.domain.addresses import Address


def _whatsapp_address(value: object) -> Address:
    if isinstance(value, Address):
        return value
    if not isinstance(value, str):
        raise ValueError("a WhatsApp address is a string")
    return Address.parse(value)


def _contact_address(value: object) -> Address:
    if isinstance(value, Address):
        return value
    if not isinstance(value, str):
        raise ValueError("an E.164 number or a WhatsApp address is a string")
    return Address.from_id(value)


# A WhatsApp address in Twilio's form (``whatsapp:+15551234567``), serialized the same way.
WhatsAppAddress = Annotated[
    Address,
    PlainValidator(_whatsapp_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^whatsapp:"}),
]

# A sender or contact as the API accepts it: E.164 or a WhatsApp address.
ContactAddress = Annotated[
    Address,
    PlainValidator(_contact_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]
