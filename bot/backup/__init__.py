"""Backups of the databases app.yaml declares: pg_dump -Fc streamed to disk, verified, kept by retention, restored.

models    the `backups` table (a row per dump; deleted files keep their row, marked deleted)
dump      pg_dump / pg_restore --list / pg_restore, locally or in the database's container (Docker exec)
service   make_backup, verify_backup, list/get, the file naming
retention what may go: the daily/weekly/max-age rules, never what an open request names, the newest
          verified backup or one younger than min_age; the one decision every deleting path asks
restore   restore a backup into its database or a scratch one
views     the chat rendering of /backup list, verify, retention
"""
