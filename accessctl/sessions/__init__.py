"""Portal sessions that know their user, so one person's sessions end in one query.

Django's own database sessions keep the user id inside the encoded session data: ending
every session of one person means decoding every session there is. This is Django's
documented extension point instead ("Extending database-backed session engines",
docs.djangoproject.com/en/5.2/topics/http/sessions/): the same engine with an indexed
``user_id`` column, set from the session's ``_auth_user_id`` on every save.
"""
