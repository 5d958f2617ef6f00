"""Backups of the databases app.yaml declares: pg_dump -Fc streamed to a store, verified, kept by retention, restored.

models     the `backups` table (a row per dump, with its store; deleted dumps keep their row, marked deleted)
errors     BackupError and its kinds; the one line of a client's stderr a user sees
runners    running pg_dump / pg_restore with an argument list: the local client, or the database's container (Docker exec)
connection the conninfo without secrets, and the client environment that carries them
dump       pg_dump into a target (a .partial file, or a multipart upload), pg_restore --list / read-all / restore of an archive
s3         the S3 client (aiobotocore), the multipart upload, an object streamed into a FIFO and hashed
stores     backups.storage: local files or S3 objects, behind one small interface the service uses
service    make_backup, verify_backup, list/get, retention applied
retention  what may go: the daily/weekly/max-age rules, never what an open request names, the newest
           verified backup or one younger than min_age; the one decision every deleting path asks
restore    restore a backup into its database or a scratch one
views      the chat rendering of /backup list, verify, retention
"""
