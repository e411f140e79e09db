"""batcher: apply tag changes to large CRM contact lists through the bulk contact-tags API."""

__version__ = "0.1.0"
