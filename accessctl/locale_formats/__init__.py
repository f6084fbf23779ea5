"""Django's display formats for the portal, per language (``FORMAT_MODULE_PATH``)."""
