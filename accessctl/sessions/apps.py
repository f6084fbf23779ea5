from django.apps import AppConfig


class SessionsConfig(AppConfig):
    name = "accessctl.sessions"
    label = "portal_sessions"
    verbose_name = "Portal sessions"
