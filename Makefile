# make run   start the bot: Slack when tokens are set, otherwise the console on SQLite
# make test  install everything, start PostgreSQL/Redis checks, the Docker Engine and test fleet, run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv fleet fleet-down bench config-reference clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/pip || $(PYTHON) -m venv --clear $(VENV) || { echo "Cannot create $(VENV): install Python's venv module (Debian: apt-get install python3-venv)."; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/opsbot migrate
	$(BIN)/opsbot start

fleet:  # the demo fleet app.yaml names (make test starts its own, per checkout), and its registry for /deploy web
	OPSBOT_TEST_PREFIX=opsbot-test- OPSBOT_TEST_WEB_PORT=18080 OPSBOT_TEST_WEB500_PORT=18081 OPSBOT_TEST_REGISTRY_PORT=15000 scripts/test-env.sh

fleet-down:
	scripts/test-env-down.sh

test: $(STAMP)
	scripts/test-env.sh
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test,bench]'
	scripts/test-env.sh
	$(BIN)/python bench/ack_latency.py
	$(BIN)/python bench/health_fanout.py
	$(BIN)/python bench/hostile_edge.py
	$(BIN)/python bench/redaction.py
	$(BIN)/python bench/escalation_scale.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/k8s_logs.py
	$(BIN)/python bench/rolling_restart.py
	$(BIN)/python bench/image_build.py

config-reference: $(STAMP)
	$(BIN)/opsbot config reference > docs/config-reference.md

clean:
	rm -rf $(VENV) opsbot.db opsbot.db-wal opsbot.db-shm *.egg-info
