"""Give a staff member their first second factor, printed on the operator's terminal.

Nobody can set up a device for someone else in the portal (it would let them sign in as
that person). A new person's first authenticator key and backup codes are made here, by
the operator, and handed over out of band; the person then replaces both themselves under
*My two-factor*, so the operator no longer knows them. Audited (``second_factor.enrolled``,
actor: the system). Refused for someone who already has a device: they replace their own,
and a lost one is removed in the portal first (which ends their sessions and tokens).
"""

import base64
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from partners import actions
from partners.actions.accounts import new_totp_key


class Command(BaseCommand):
    help = "Make a staff member's first authenticator key and backup codes (printed here)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No account {options['username']!r}.")
        if not user.is_staff:
            raise CommandError(f"{user} is not staff: only staff sign in to the portal.")
        if (
            TOTPDevice.objects.filter(user=user).exists()
            or StaticDevice.objects.filter(user=user).exists()
        ):
            raise CommandError(
                f"{user} already has a second factor: they replace it themselves under "
                "My two-factor; if it is lost, remove it in the portal first."
            )
        key = new_totp_key()
        device = actions.enroll_totp(actor=None, user=user, key=key)
        codes = actions.generate_backup_codes(actor=None, user=user)
        self.stdout.write(
            "\n".join(
                [
                    f"Second factor for {user} (hand it over in person; they should replace",
                    "both under My two-factor after their first sign-in):",
                    f"  authenticator key: {base64.b32encode(bytes.fromhex(key)).decode()}",
                    f"  or as a URI:       {device.config_url}",
                    f"  backup codes:      {' '.join(codes)}",
                    "",
                ]
            )
        )
