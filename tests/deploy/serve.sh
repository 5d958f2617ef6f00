#!/bin/sh
# The deploy test application: httpd on 127.0.0.1:$PORT; /cgi-bin/health answers $HEALTH_STATUS.
mkdir -p /www/cgi-bin
echo "$APP_VERSION" >/www/version
cat >/www/cgi-bin/health <<CGI
#!/bin/sh
if [ "$HEALTH_STATUS" = 200 ]; then printf 'Status: 200 OK\r\n'; else printf 'Status: 500 Internal Server Error\r\n'; fi
printf 'Content-Type: application/json\r\n\r\n'
printf '%s\n' '{"status":"$( [ "$HEALTH_STATUS" = 200 ] && echo healthy || echo unhealthy )","version":"$APP_VERSION"}'
CGI
chmod 755 /www/cgi-bin/health
echo "app $APP_VERSION: starting"
if [ "$HEALTH_STATUS" != 200 ]; then
    echo "ERROR app $APP_VERSION: migration 42 missing; DATABASE_URL=postgres://app:hunter2secret@db/app"
fi
echo "app $APP_VERSION: listening on 127.0.0.1:${PORT:-8080}"
exec httpd -f -p "127.0.0.1:${PORT:-8080}" -h /www
