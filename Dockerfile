# The image deploy/kubernetes/ runs: Python 3.11, Ray 2.60 (Serve), torch 2.13.0 and luma_ray
# with the server and s3 extras. One Dockerfile for every accelerator; the torch build is a
# build argument (docs/deploy.md, "Kubernetes"):
#
#   docker build -t luma-ray:0.1.0-cpu .
#   docker build -t luma-ray-cuda:0.1.0-cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#   docker build -t luma-ray-rocm:0.1.0-rocm \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/rocm6.4 .
#
# The CUDA and ROCm torch wheels carry their own runtime libraries; the node needs only the
# driver and the device plugin (nvidia.com/gpu, amd.com/gpu). Linted by hadolint in
# tests/unit/test_kubernetes_manifests.py.
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LUMA_RAY_HOME=/var/lib/luma_ray

# KubeRay's probes run wget in the Ray containers; tini reaps the processes Ray leaves behind.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget tini \
    && rm -rf /var/lib/apt/lists/*

# Ray's containers run as uid 1000 (KubeRay's examples do too); the state folder is its own.
RUN useradd --create-home --uid 1000 --shell /bin/bash ray \
    && mkdir -p /var/lib/luma_ray \
    && chown ray:ray /var/lib/luma_ray

WORKDIR /opt/luma_ray

# torch first, from the index that picks its build, so the project's install finds it.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml README.md ./
COPY luma_ray ./luma_ray
# The project from this source tree: its dependencies are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install ".[server,s3]"

USER 1000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["luma-ray", "--help"]
