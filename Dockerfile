# The refunds image: the worker, the HTTP service and the migration job all run it.
#   docker build -t refunds .
# Stage 1 builds a wheel of the product; stage 2 installs it on a slim base as a non-root user.
# Only the product packages are copied: the PSP sandbox (`sandbox/`, a dev and test tool) stays out.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY domain domain
COPY workflows workflows
COPY activities activities
COPY adapters adapters
COPY workers workers
# with the otel extra: REFUNDS_OTEL_ENDPOINT works in the image as documented
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[otel]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 refunds
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER refunds
WORKDIR /home/refunds
# The service answers /healthz on REFUNDS_HTTP_PORT; the worker overrides this check in compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('REFUNDS_HTTP_PORT', '8000'), timeout=2)"
ENTRYPOINT ["refunds"]
CMD ["serve"]
