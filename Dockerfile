# The image a Kubernetes work pool runs prefect-scenario's flow runs in (and the watcher and
# the webhook receiver): Prefect and prefect-scenario with their pinned runtime dependencies,
# nothing else: no emulator extra, no test or dev tools, no source tree. See docs/production.md.
#
#   docker build -t REGISTRY/prefect-scenario:0.2.0 .
#
# tests/test_dockerfile.py parses this file and checks exactly that (no docker daemon needed).

# -- build: the wheel, from the package's files only (.dockerignore lets nothing else in) ----
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY prefect_scenario ./prefect_scenario
COPY scenario_emulator ./scenario_emulator
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /dist .

# -- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /dist /tmp/dist
# `-c` (constraints), not `-r`: the lock pins the versions of whatever the wheel needs (it was
# resolved with them), and installs nothing the wheel does not ask for. The lock also holds
# the dev and emulator tools; as constraints they stay out of the image.
RUN pip install --constraint /tmp/requirements.lock /tmp/dist/prefect_scenario-*.whl \
    && rm -rf /tmp/dist /tmp/requirements.lock \
    && useradd --create-home --uid 10001 --user-group prefect
# Kubernetes can enforce this with `runAsNonRoot: true` (a numeric USER makes that checkable).
USER 10001
WORKDIR /home/prefect
# No CMD: the Kubernetes worker sets each flow-run pod's command (`prefect flow-run execute`);
# the watcher and the webhook receiver set theirs (docs/production.md).
