from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "accessctl.signing"
    label = "signing"
    verbose_name = "Signing keys"
