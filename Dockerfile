# One image for the indexer and the UI. PyPI's torch wheels for Linux x86_64 bundle CUDA,
# so the same image uses a GPU when the container is given one and the CPU otherwise.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    CLIPSEARCH_HOME=/store \
    CLIPSEARCH_MODEL_CACHE=/models

WORKDIR /app
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md ./
COPY clipsearch ./clipsearch
COPY indexer ./indexer
COPY ui ./ui
COPY migrations ./migrations
# The Ray cluster's image adds the `ray` extra (docker-compose profile `ray`).
ARG EXTRAS="torch,ui,postgres,heif,api"
RUN pip install ".[${EXTRAS}]"

VOLUME ["/store", "/models"]
EXPOSE 8501 8700
CMD ["clipsearch", "status"]
