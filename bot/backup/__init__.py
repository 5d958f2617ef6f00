"""Backups of the databases app.yaml declares: pg_dump -Fc streamed to disk, verified, kept by retention, restored.

models    the `backups` table (a row per dump; deleted files keep their row, marked deleted)
dump      pg_dump / pg_restore --list / pg_restore, locally or in the database's container (Docker exec)
service   make_backup, verify_backup, list/get, the file naming
retention which backups the daily/weekly/max-age rules keep, and applying it
restore   restore a backup into its database or a scratch one
views     the chat rendering of /backup list, verify, retention
"""
