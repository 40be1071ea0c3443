# The Simpul hub. Build: docker build -t simpul . ; run with docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 1000 simpul
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY adapters ./adapters
COPY normalizer ./normalizer
COPY config ./config
RUN pip install .
USER simpul
ENV SIMPUL_DATA_DIR=/home/simpul/data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
CMD ["sh", "-c", "simpul db upgrade && simpul serve --host 0.0.0.0 --port 8000"]
