"""The staff portal's own pages beyond Django's model admins: the access matrix and the
timeline (named to the portal through ``settings.ACCESSCTL_PORTAL_PAGES``), and the sizes
and times they show."""
