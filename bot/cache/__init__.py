"""The cache slice: Redis servers declared under `caches:` in app.yaml (runbooks 000, 001, 004).

client: one short-lived connection per call; a dead Redis is CacheUnavailable, one sentence.
readings: /cache status and /cache queues (INFO, LLEN), graded with the cache's thresholds.
keys: one user's rate-limit keys found with SCAN (never KEYS), deleted exactly as planned; FLUSHDB.
views: the replies /cache shows.
"""
