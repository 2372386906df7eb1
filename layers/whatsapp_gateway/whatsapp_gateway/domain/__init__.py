"""The WhatsApp rules: windows, categories, opt-out keywords and the send policy."""
