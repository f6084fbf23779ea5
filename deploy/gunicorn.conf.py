"""gunicorn for accessctl: ``gunicorn -c deploy/gunicorn.conf.py accessctl.wsgi``.

Sync workers: requests are short (authorizations answer with X-Accel-Redirect or a 302;
bytes never pass through Python in production). Scale with processes and replicas.
"""

import multiprocessing
import os

# Files written by the app are not world-readable (the storages also chmod what they
# write); set here as systemd's UMask= and the image's entrypoint do, so every way of
# starting gunicorn gets it. gunicorn's own "umask" setting covers only its sockets.
umask = 0o027
os.umask(umask)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
max_requests = 10_000  # recycle workers now and then
max_requests_jitter = 1_000
# gunicorn answers its own limits with an HTML page, so nginx's limits sit below them
# (deploy/nginx/accessctl.conf): a request line or header line nginx passes is at most 8000
# bytes, and its header buffers (1k + 4 x 8000 bytes) hold fewer than 11,100 header lines.
# Whatever nginx lets through, the app answers, in problem+json (too many or too long
# headers: 431 header_too_large).
limit_request_line = 8190  # gunicorn's maximum
limit_request_field_size = 8190
limit_request_fields = 16384
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# Never the query string: ``%(U)s`` is the path alone (not ``%(r)s``, the request line, nor
# ``%(q)s``). A secret put in the URL (``?grant_token=``, in any spelling or encoding) is
# refused by the API and must not be written here either (docs/security.md).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
preload_app = True
