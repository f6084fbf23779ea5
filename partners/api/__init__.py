"""The partner API (v1) and the staff API, on Django REST Framework."""
