"""The API's routes, one router per resource; ``api.app`` includes each of ``ROUTERS``."""
