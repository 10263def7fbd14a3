# syntax=docker/dockerfile:1
# flexsync's container image: the flexsync binary as entrypoint, on a
# distroless glibc base (no shell, no package manager), running as
# 65532:65532 ("nonroot"). Build:
#
#   docker build -t flexsync:dev .            # or: podman build -t flexsync:dev .
#   docker build --build-arg BASE_IMAGE=my.registry/distroless/cc-debian12:nonroot ...
#   cargo build --release --locked && install -D target/release/flexsync dist/flexsync
#   docker build --build-arg BINARY=prebuilt -f Dockerfile dist
#                                     # a binary built on Debian 12 or older glibc
#
# The labels want --build-arg VERSION=… REVISION=… SOURCE=… (the release
# workflow deploy/ci/release.yml passes them). deploy/test/image.sh builds
# and runs this file on a machine without any registry.

# The builder's Debian release must not be newer than the base's: the
# binary links against glibc, which is only backwards compatible.
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# Where the binary comes from: `source` compiles this checkout; `prebuilt`
# takes ./flexsync from the build context (then the context is a
# directory holding just the binary).
ARG BINARY=source

FROM ${RUST_IMAGE} AS source
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/flexsync /out/flexsync

FROM scratch AS prebuilt
COPY flexsync /out/flexsync

# Selected by name: the stage not chosen is never built.
FROM ${BINARY} AS binary

FROM ${BASE_IMAGE}
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="flexsync" \
      org.opencontainers.image.description="GitOps for Autodesk Flex product assignments (Team Admin API)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
COPY --from=binary --chmod=0755 /out/flexsync /usr/local/bin/flexsync
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# /healthz /readyz /metrics /status, when run with --listen=0.0.0.0:9464.
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/flexsync"]
CMD ["--help"]
